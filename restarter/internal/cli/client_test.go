package cli

import (
	"bufio"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/control"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
	"github.com/envoy-restarter/restarter/restarter/status"

	"github.com/stretchr/testify/require"
)

func TestClientMain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	one, two := 1, 2
	answers := []control.Reply{
		{OK: true, Epoch: &one},
		{Epoch: &two, Error: "check failed: exit status 1"},
		{Error: "shutdown in progress"},
	}
	s, err := control.Listen(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	go func() {
		for _, a := range answers {
			c := <-s.Calls()
			c.Reply <- a
		}
	}()
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"--control-socket", path}, machine.ExitClean, "hot restart to epoch 1: ready\n", ""},
		{[]string{"--control-socket", path}, ExitReloadFailed, "", "restarter reload: hot restart to epoch 2 failed: check failed: exit status 1\n"},
		{[]string{"--control-socket", path}, ExitReloadFailed, "", "restarter reload: shutdown in progress\n"},
		{[]string{"--bogus"}, machine.ExitUsage, "", "restarter reload: flag provided but not defined: -bogus\n"},
		{[]string{"--control-socket", path, "extra"}, machine.ExitUsage, "", "restarter reload: unexpected argument \"extra\"\n"},
		{nil, machine.ExitUsage, "", "restarter reload: no control socket: give --control-socket or set RESTARTER_CONTROL_SOCKET\n"},
		{[]string{"--control-socket", filepath.Join(dir, "none.sock")}, ExitUnreachable, "", "restarter reload: control socket " + filepath.Join(dir, "none.sock") + ": dial unix " + filepath.Join(dir, "none.sock") + ": connect: no such file or directory\n"},
	}
	t.Setenv("RESTARTER_CONTROL_SOCKET", "")
	for _, tt := range tests {
		var out, errOut strings.Builder
		require.Equal(t, tt.code, clientMain("reload", tt.args, &out, &errOut), "%v: %s", tt.args, errOut.String())
		require.Equal(t, tt.stdout, out.String())
		require.Equal(t, tt.stderr, errOut.String())
	}
}

func TestInProgressSeesAHeldRestart(t *testing.T) {
	// Given a restarter whose reload is queued behind a held restart (no
	// restart in progress),
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := control.Listen(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	go func() {
		c := <-s.Calls()
		c.Reply <- control.Reply{Status: &status.Status{Queued: true}}
	}()
	// when the client asks after its --timeout, then the reload is in
	// progress (exit 4), not unreachable (exit 3).
	msg, ok := inProgress(path)
	require.True(t, ok)
	require.Contains(t, msg, "queued")
}

// serveStatus plays the event loop for s: it answers every status call
// until s stops.
func serveStatus(s *control.Server, reason string) {
	go func() {
		for {
			select {
			case c := <-s.Calls():
				st := status.Status{Phase: "running", Epochs: []status.EpochStatus{}, LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: reason}}
				c.Reply <- control.Reply{OK: true, Status: &st}
			case <-s.Done():
				return
			}
		}
	}()
}

// Issue 19, defect 2: what the client prints from the server (or from a
// socket path) cannot move the terminal's cursor or forge a line: control
// characters are escaped.
func TestClientEscapesControlCharacters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	s, err := control.Listen(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	epoch := 2
	go func() {
		c := <-s.Calls()
		c.Reply <- control.Reply{Error: "refused\x1b[2J\nrestarter reload: hot restart to epoch 2: ready\r"}
		c = <-s.Calls()
		c.Reply <- control.Reply{Epoch: &epoch, Error: "check failed:\n\x1b]0;owned\x07"}
	}()
	t.Setenv("RESTARTER_CONTROL_SOCKET", "")
	var out, errOut strings.Builder
	require.Equal(t, ExitReloadFailed, clientMain("reload", []string{"--control-socket", path}, &out, &errOut))
	require.Equal(t, `restarter reload: refused\x1b[2J\nrestarter reload: hot restart to epoch 2: ready\r`+"\n", errOut.String())
	errOut.Reset()
	require.Equal(t, ExitReloadFailed, clientMain("reload", []string{"--control-socket", path}, &out, &errOut))
	require.Equal(t, `restarter reload: hot restart to epoch 2 failed: check failed:\n\x1b]0;owned\a`+"\n", errOut.String())

	// A socket path with a control character in it, in the client's own error.
	bad := filepath.Join(dir, "bad\x1b[31m.sock")
	errOut.Reset()
	require.Equal(t, ExitUnreachable, clientMain("status", []string{"--control-socket", bad}, &out, &errOut))
	require.NotContains(t, errOut.String(), "\x1b")
	require.Contains(t, errOut.String(), `bad\x1b[31m.sock`)
	require.Equal(t, 1, strings.Count(errOut.String(), "\n"))
}

// Issue 19, defect 2: the status JSON printed carries no raw control
// character either, not even those encoding/json leaves as they are (DEL
// and the C1 range, which some terminals obey).
func TestClientStatusEscapesControlCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := control.Listen(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	serveStatus(s, "epoch 1 said: \x1b[31mred\x7f\u009b2J")
	var out, errOut strings.Builder
	require.Equal(t, machine.ExitClean, clientMain("status", []string{"--control-socket", path, "--json"}, &out, &errOut), errOut.String())
	require.Contains(t, out.String(), `"reason": "epoch 1 said: \u001b[31mred\u007f\u009b2J"`)
	var st status.Status
	require.NoError(t, json.Unmarshal([]byte(out.String()), &st), "still JSON")
	require.Equal(t, "epoch 1 said: \x1b[31mred\x7f\u009b2J", st.LastRestart.Reason)

	// The text view escapes them too.
	out.Reset()
	require.Equal(t, machine.ExitClean, clientMain("status", []string{"--control-socket", path}, &out, &errOut), errOut.String())
	require.Contains(t, out.String(), `last restart: epoch 1 failed: epoch 1 said: \x1b[31mred\x7f\u009b2J`+"\n")
	require.NotContains(t, out.String(), "\x1b")
}

func TestClientUsageErrors(t *testing.T) {
	t.Setenv("RESTARTER_CONTROL_SOCKET", "")
	path := filepath.Join(t.TempDir(), "control.sock")
	for _, args := range [][]string{
		{"--control-socket", path, "--timeout", "0s"},
		{"--control-socket", path, "--timeout", "-1m"},
		{"--control-socket", "/" + strings.Repeat("d", 120) + "/control.sock"},
	} {
		var out, errOut strings.Builder
		require.Equal(t, machine.ExitUsage, clientMain("reload", args, &out, &errOut), "%q", args)
		require.Empty(t, out.String())
		require.Equal(t, 1, strings.Count(errOut.String(), "\n"), "one line: %q", errOut.String())
	}
}

func TestClientTakesTheSocketFromTheEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := control.Listen(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	serveStatus(s, "")
	t.Setenv("RESTARTER_CONTROL_SOCKET", path)
	var out, errOut strings.Builder
	require.Equal(t, machine.ExitClean, clientMain("status", nil, &out, &errOut), errOut.String())
	require.True(t, strings.HasPrefix(out.String(), "phase: running\n"), out.String())
}

// busyRestarter plays an event loop in the middle of a hot restart: it
// holds every reload without an answer, and answers every status call
// with st.
func busyRestarter(t *testing.T, st status.Status) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := control.Listen(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	go func() {
		for {
			select {
			case c := <-s.Calls():
				if c.Command == "status" {
					c.Reply <- control.Reply{OK: true, Status: &st}
				}
			case <-s.Done():
				return
			}
		}
	}()
	return path
}

func TestReloadTimeoutTellsARestartInProgressFromAnUnreachableRestarter(t *testing.T) {
	t.Setenv("RESTARTER_CONTROL_SOCKET", "")
	tests := []struct {
		name    string
		status  status.Status
		code    int
		mention []string
	}{
		{"checking", status.Status{Restart: &status.RestartStatus{Epoch: 1, Stage: "checking"}}, ExitInProgress, []string{"epoch 1", "checking", "in progress"}},
		{"starting with another queued", status.Status{Restart: &status.RestartStatus{Epoch: 2, Stage: "starting"}, Queued: true}, ExitInProgress, []string{"epoch 2", "queued"}},
		{"held", status.Status{Queued: true}, ExitInProgress, []string{"queued"}},
		{"no restart to wait for", status.Status{}, ExitUnreachable, []string{"timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Given a restarter whose status is tt.status, answering no reload,
			path := busyRestarter(t, tt.status)

			// when `restarter reload` runs out of --timeout,
			var out, errOut strings.Builder
			code := clientMain("reload", []string{"--control-socket", path, "--timeout", "50ms"}, &out, &errOut)

			// then it says what it waited for, and exits 4 if the restart is
			// under way, 3 if nothing is.
			require.Equal(t, tt.code, code, errOut.String())
			require.Empty(t, out.String())
			for _, m := range tt.mention {
				require.Contains(t, errOut.String(), m)
			}
		})
	}
}

func TestStatusTimeoutIsUnreachableEvenDuringARestart(t *testing.T) {
	// Given a restarter that holds the first status call without an answer,
	// and answers the next ones with a hot restart in progress,
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := control.Listen(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	go func() {
		<-s.Calls() // held until s closes
		for {
			select {
			case c := <-s.Calls():
				c.Reply <- control.Reply{OK: true, Status: &status.Status{Restart: &status.RestartStatus{Epoch: 1, Stage: "starting"}}}
			case <-s.Done():
				return
			}
		}
	}()

	// when `restarter status` runs out of --timeout, it exits 3: exit 4 is
	// for a reload still waiting on its restart.
	var out, errOut strings.Builder
	require.Equal(t, ExitUnreachable, clientMain("status", []string{"--control-socket", path, "--timeout", "50ms"}, &out, &errOut), errOut.String())
	require.Empty(t, out.String())
}

func TestReloadTimeoutWithAStatusThatFailsIsUnreachable(t *testing.T) {
	// Given a control socket that takes a reload without answering, then
	// hangs up on the status asked after the timeout,
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		reload, err := ln.Accept()
		if err != nil {
			return
		}
		defer reload.Close()
		st, err := ln.Accept()
		if err != nil {
			return
		}
		bufio.NewReader(st).ReadString('\n')
		st.Close()
		bufio.NewReader(reload).ReadString('\n') // until the client hangs up
	}()

	// when `restarter reload` runs out of --timeout, it exits 3: nothing
	// shows a restart in progress.
	var out, errOut strings.Builder
	require.Equal(t, ExitUnreachable, clientMain("reload", []string{"--control-socket", path, "--timeout", "50ms"}, &out, &errOut), errOut.String())
	require.Contains(t, errOut.String(), "timeout")
}

func TestFormatStatus(t *testing.T) {
	at := time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC)
	s := status.Status{
		Phase:       "running",
		Epochs:      []status.EpochStatus{{Epoch: 2, PID: 10, State: "draining"}, {Epoch: 3, PID: 11, State: "starting"}},
		Restart:     &status.RestartStatus{Epoch: 4, Stage: "checking"},
		Queued:      true,
		LastRestart: &status.RestartStatus{Epoch: 3, Result: "ok"},
		Counters:    status.Counters{SIGHUPs: 2, Reloads: 1, Restarts: 3},
	}
	for i := 1; i <= 7; i++ {
		s.Restarts = append(s.Restarts, status.Restart{ID: i, Epoch: i, Trigger: "SIGHUP", RequestedAt: at, Outcome: status.OutcomeOK, DurationSeconds: 1.5})
	}
	s.Restarts[5] = status.Restart{ID: 6, Epoch: 6, Trigger: "watch", WatchPath: "/etc/envoy/envoy.yaml", RequestedAt: at, Outcome: status.OutcomeRefused, Reason: "check failed: exit status 1", DurationSeconds: 0.25}
	s.Restarts[6] = status.Restart{ID: 7, Epoch: 6, Trigger: "reload", RequestedAt: at}
	require.Equal(t, `phase: running
epochs: 2 (PID 10, draining), 3 (PID 11, starting)
restart in progress: epoch 4 (checking)
restart queued: yes
last restart: epoch 3 ok
last restarts (of 7 kept; --json for all):
  #7 epoch 6 reload at 2026-12-02 03:04:05: in progress
  #6 epoch 6 watch /etc/envoy/envoy.yaml at 2026-12-02 03:04:05: refused after 0.25s: check failed: exit status 1
  #5 epoch 5 SIGHUP at 2026-12-02 03:04:05: ok after 1.50s
  #4 epoch 4 SIGHUP at 2026-12-02 03:04:05: ok after 1.50s
  #3 epoch 3 SIGHUP at 2026-12-02 03:04:05: ok after 1.50s
counters: sighups=2 reloads=1 restarts=3 failed=0 checks_failed=0 init_flags_cleared=0 slot_holds=0 memory_guard_refusals=0
`, formatStatus(s))
	require.Equal(t, " (restart #7, 0.00s)", recordNote(&s.Restarts[6]))
	require.Empty(t, recordNote(nil))
}
