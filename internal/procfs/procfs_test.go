package procfs

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseStatNameWithSpacesAndParens(t *testing.T) {
	line := []byte("42 (a (weird) name) S 7 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 1 0 123 1000 10 18446744073709551615\n")
	st, err := parseStat(42, line)
	require.NoError(t, err)
	require.Equal(t, Stat{PID: 42, State: 'S', PPID: 7, PGRP: 42, CPU: 200 * ClockTick}, st)
	_, err = parseStat(42, []byte("42 (x"))
	require.Error(t, err)
}

func TestThisProcess(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	require.NoError(t, err)
	require.Equal(t, os.Getppid(), st.PPID)
	require.True(t, st.Running())
	require.NoError(t, CheckOwn())
	pids, err := PIDs()
	require.NoError(t, err)
	require.Contains(t, pids, os.Getpid())
	rss, hwm, err := Memory(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, rss)
	require.GreaterOrEqual(t, hwm, rss)
	exe, err := Exe(os.Getpid())
	require.NoError(t, err)
	self, _ := os.Executable()
	require.Equal(t, self, exe)
}

func TestChildEnvironAndExit(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.Env = []string{"A=1", "PROCFS_TEST=yes"}
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	require.True(t, slices.Contains(Children(os.Getpid()), pid))
	var env bytes.Buffer
	require.NoError(t, ReadEnviron(&env, pid))
	require.True(t, HasEnv(env.Bytes(), []byte("PROCFS_TEST=yes")))
	require.False(t, HasEnv(env.Bytes(), []byte("PROCFS_TEST=no")))
	v, ok := Env(env.Bytes(), "A")
	require.True(t, ok)
	require.Equal(t, "1", v)
	maps, err := ReadMaps(pid)
	require.NoError(t, err)
	require.NotEmpty(t, maps)

	cmd.Process.Kill()
	require.Eventually(t, func() bool { return !Running(pid) }, 10e9, 1e6, "a zombie is not running")
	cmd.Wait()
	_, err = ReadStat(pid)
	require.True(t, Gone(err), "%v", err)
}
