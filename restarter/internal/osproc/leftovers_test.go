package osproc

import (
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckLeftoversHelpersOnlyWarn(t *testing.T) {
	// Given a helper of an earlier run, holding no Envoy state,
	helper := Leftover{pid: 7, ppid: 1, epoch: "0"}
	var warned []string
	find := func(string) []Leftover { return []Leftover{helper} }

	// the start goes ahead at once, with one warning naming it.
	require.NoError(t, CheckLeftovers(find, "id", func(m string) { warned = append(warned, m) }))
	require.Equal(t, []string{"processes started by an earlier run of this restarter are still running, holding no Envoy state (no Envoy shared memory mapped): PID=7 (epoch 0, parent PID=1); leaving them alone"}, warned)
}

func TestCheckLeftoversWaitsForEnvoyToExit(t *testing.T) {
	// Given an Envoy epoch of an earlier run that exits after the first look,
	calls := 0
	find := func(string) []Leftover {
		calls++
		if calls > 1 {
			return nil
		}
		return []Leftover{{pid: 8, ppid: 1, epoch: "3", envoy: true}}
	}
	var warned []string
	require.NoError(t, CheckLeftovers(find, "id", func(m string) { warned = append(warned, m) }))
	require.Len(t, warned, 1)
	require.Contains(t, warned[0], "Envoy processes started by an earlier run of this restarter are still running: PID=8 (epoch 3, parent PID=1); waiting up to 5s")
}

func TestHoldsEnvoyState(t *testing.T) {
	sleep := exec.Command("sleep", "30")
	require.NoError(t, sleep.Start())
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	require.False(t, holdsEnvoyState(sleep.Process.Pid), "a sleep maps no Envoy region")
	require.True(t, holdsEnvoyState(1<<30), "maps that cannot be read may be Envoy's")
}
