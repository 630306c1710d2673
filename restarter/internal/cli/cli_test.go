package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestMainExitCodes(t *testing.T) {
	t.Setenv("BUILD_WORKING_DIRECTORY", t.TempDir())
	var out, errOut strings.Builder
	require.Equal(t, machine.ExitClean, Main([]string{"--version"}, &out, &errOut))
	require.True(t, strings.HasPrefix(out.String(), "restarter "), out.String())
	out.Reset()
	require.Equal(t, machine.ExitClean, Main([]string{"-h"}, &out, &errOut))
	require.Contains(t, out.String(), "Exit codes:")
	require.Equal(t, machine.ExitUsage, Main([]string{"missing.sh"}, &out, &errOut))
	require.Equal(t, "restarter: COMMAND \"missing.sh\": no such file\n", errOut.String())
	errOut.Reset()
	require.Equal(t, machine.ExitUsage, Main([]string{"status", "--control-socket"}, &out, &errOut))
	require.Equal(t, "restarter status: flag needs an argument: -control-socket\n", errOut.String())
}

// setOpenFilesLimit sets the soft RLIMIT_NOFILE of the test process to
// limit until the test ends.
func setOpenFilesLimit(t *testing.T, limit uint64) {
	t.Helper()
	var saved unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &saved))
	lowered := saved
	lowered.Cur = limit
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &lowered))
	t.Cleanup(func() { require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &saved)) })
}

func TestMainRefusesTooFewOpenFilesBeforeAnythingElse(t *testing.T) {
	// Given an open files limit below what the restarter needs,
	setOpenFilesLimit(t, config.MinOpenFiles-1)
	for _, args := range [][]string{
		{"--version"},
		{"status", "--control-socket", filepath.Join(t.TempDir(), "control.sock")},
	} {
		// when the restarter or its client starts, it does nothing but say
		// so on stderr, in one line, and exit 2.
		var out, errOut strings.Builder
		require.Equal(t, machine.ExitUsage, Main(args, &out, &errOut), "%q", args)
		require.Empty(t, out.String(), "%q", args)
		require.Contains(t, errOut.String(), "RLIMIT_NOFILE", "%q", args)
		require.Equal(t, 1, strings.Count(errOut.String(), "\n"), "%q", args)
	}
}

// lockedBuffer is the restarter's stdout: written by the log's writer
// goroutine, read by the test. With perWrite set, it is a slow reader:
// each write takes that long.
type lockedBuffer struct {
	perWrite time.Duration
	mu       sync.Mutex
	b        strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	time.Sleep(l.perWrite)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// script writes a start script that exits with code, in a fresh
// directory, and returns its path.
func script(t *testing.T, code int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "start.sh")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf("#!/bin/sh\nexit %d\n", code)), 0o755))
	return path
}

// logRecords decodes the JSON log lines in out.
func logRecords(t *testing.T, out string) []map[string]any {
	t.Helper()
	var records []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), "%s", sc.Text())
		records = append(records, r)
	}
	require.NotEmpty(t, records)
	return records
}

func TestMainRunsTheSupervisorAndFlushesItsLog(t *testing.T) {
	t.Setenv("BUILD_WORKING_DIRECTORY", "")
	for _, tt := range []struct {
		name     string
		exitCode int // the start script's
		want     int // the restarter's
	}{
		{"the only epoch exits 0", 0, machine.ExitClean},
		{"the only epoch fails", 3, machine.ExitError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Given a start script,
			command := script(t, tt.exitCode)

			// when the restarter runs it with JSON logs, to a reader slower
			// than the restarter,
			out := lockedBuffer{perWrite: 2 * time.Millisecond}
			var errOut strings.Builder
			code := Main([]string{"--log-format", "json", command}, &out, &errOut)

			// then it exits as the README says, and by the time Main returns,
			// every log line, the last (the exit code) included, is on stdout
			// in JSON.
			require.Equal(t, tt.want, code, "stderr: %s", errOut.String())
			records := logRecords(t, out.String())
			for _, r := range records {
				require.Equal(t, "restarter", r["component"], "%v", r)
			}
			require.Contains(t, records[0]["msg"], command)
			require.Equal(t, float64(tt.want), records[len(records)-1]["code"], "%v", records[len(records)-1])
		})
	}
}

func TestTuneRuntimeUnlessTheEnvironmentSetsIt(t *testing.T) {
	gcBefore, procsBefore := debug.SetGCPercent(100), runtime.GOMAXPROCS(0)
	t.Cleanup(func() { debug.SetGCPercent(gcBefore); runtime.GOMAXPROCS(procsBefore) })
	tuned := func(env map[string]string) (gcPercent, procs int) {
		debug.SetGCPercent(100)
		runtime.GOMAXPROCS(2)
		TuneRuntime(func(k string) string { return env[k] })
		return debug.SetGCPercent(100), runtime.GOMAXPROCS(0)
	}
	// Without GOGC and GOMAXPROCS, the restarter's small heap is collected
	// at 25% and its one event loop runs on one P;
	gcPercent, procs := tuned(nil)
	require.Equal(t, 25, gcPercent)
	require.Equal(t, 1, procs)
	// with them set, the operator's choice stands (the runtime read it).
	gcPercent, procs = tuned(map[string]string{"GOGC": "400", "GOMAXPROCS": "2"})
	require.Equal(t, 100, gcPercent)
	require.Equal(t, 2, procs)
}
