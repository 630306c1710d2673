package integration

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Scenario 1: epoch 0 serves; SIGTERM or SIGINT ends every process, exit 0.
func TestStartServesAndSIGTERMStopsEverything(t *testing.T) {
	testStartAndStop(t, syscall.SIGTERM, "SIGTERM")
}

func TestStartServesAndSIGINTStopsEverything(t *testing.T) {
	testStartAndStop(t, syscall.SIGINT, "SIGINT")
}

func testStartAndStop(t *testing.T, sig syscall.Signal, name string) {
	t.Parallel()
	// Given a restarter running the start script,
	sb := newSandbox(t, "")
	r := sb.start()
	r.WaitLine(`starting hot-restarter with target: `+sb.script+`$`, 1, wait)
	e0, st := sb.waitLive(0)

	// epoch 0 serves the listener and its admin says LIVE at epoch 0,
	resp := httpGet(t, "http://"+sb.addr()+"/")
	require.Contains(t, resp, "hello\n")
	require.Contains(t, resp, "fakeenvoy epoch=0 pid="+strconv.Itoa(e0.PID))
	require.Equal(t, "LIVE", httpGet(t, "http://"+st.AdminAddress+"/ready"))

	// when the restarter gets the signal,
	r.Signal(sig)

	// then it passes TERM to epoch 0, which exits 0, and so does the restarter.
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	r.WaitLine(`got `+name+`$`, 1, wait)
	r.WaitLine(`sending TERM to PID=`+strconv.Itoa(e0.PID)+`$`, 1, wait)
	r.WaitLine(epochLine(e0.PID, `caught ENVOY_SIGTERM$`), 1, wait)
	require.Equal(t, "exited with code=0", sb.waitReaped(e0))
	r.WaitLine(`all children exited cleanly$`, 1, wait)
	sb.requireAllGone()
	require.Len(t, sb.forked(), 1)
	_, err := os.Stat(envoyshm.Path(sb.BaseID))
	require.NoError(t, err, "the shared memory region stays, as Envoy leaves it (the sandbox removes it)")
}

// Scenario 10: the restarter SIGKILLed leaves no fakeenvoy behind.
func TestRestarterSIGKILLedLeavesNoEpoch(t *testing.T) {
	t.Parallel()
	// Given two live epochs (the parent kept alive by a long shutdown time),
	sb := newSandbox(t, `fakeenvoy --base-id "$BASE_ID" --parent-shutdown-time-s 60`+"\n")
	r := sb.start()
	e0, _ := sb.waitLive(0)
	r.Signal(syscall.SIGHUP)
	e1, _ := sb.waitLive(1)
	require.True(t, proctest.Alive(e0.PID))

	// when the restarter is SIGKILLed (it can do nothing about it),
	r.Signal(syscall.SIGKILL)
	require.Equal(t, proctest.Exit{Signal: syscall.SIGKILL}, r.Wait(wait))

	// then both epochs die with it (Pdeathsig), without the test's clean-up.
	for _, e := range []epoch{e0, e1} {
		proctest.WaitFor(t, wait, "epoch "+strconv.Itoa(e.N)+" to die with the restarter", func() bool { return !proctest.Alive(e.PID) })
	}
}

// Scenario 11: a missing, non-executable or directory start script is a
// usage error: exit 2, one line on stderr, nothing started.
func TestBadStartScript(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "start.sh")
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\nexec sleep 1000\n"), 0o644))
	tests := []struct {
		name, command, want string
	}{
		{"missing", filepath.Join(dir, "missing.sh"), `restarter: COMMAND "` + dir + `/missing.sh": no such file`},
		{"not executable", notExec, `restarter: COMMAND "` + notExec + `": not executable (permission denied)`},
		{"directory", dir, `restarter: COMMAND "` + dir + `": is a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(proctest.Binary(t, "restarter"), tt.command)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			err := cmd.Run()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit)
			require.Equal(t, 2, exit.ExitCode())
			require.Equal(t, tt.want+"\n", stderr.String(), "one line on stderr")
			require.Empty(t, stdout.String(), "no log lines: nothing was started")
		})
	}
}

// httpGet returns the body of a GET that must answer 200.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", url, b)
	return strings.TrimSpace(string(b))
}

// httpStatus returns the status and trimmed body of a GET.
func httpStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, strings.TrimSpace(string(b))
}
