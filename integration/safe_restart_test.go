package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/status"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// The safe-restart scenarios: the restarter's --check, readiness gating,
// base-id hand-off and control socket against fakeenvoy.

// safeSandbox is a sandbox whose admin has a fixed port, so that
// --ready-url can name it, and a control socket path.
type safeSandbox struct {
	*sandbox
	sock string
}

func newSafeSandbox(t *testing.T, body string) *safeSandbox {
	t.Helper()
	return newSafeSandboxWith(t, body, parentShutdownTime)
}

// newSafeSandboxWith is newSafeSandbox with epochs whose
// --parent-shutdown-time-s is parentShutdown (losslessParentShutdownTime
// for the scenarios that assert no request is lost).
func newSafeSandboxWith(t *testing.T, body string, parentShutdown time.Duration) *safeSandbox {
	t.Helper()
	sb := newSandboxWith(t, body, parentShutdown)
	sb.adminPort = proctest.FreePort(t)
	sb.config = sb.writeConfig("envoy.yaml", sb.port)
	return &safeSandbox{sandbox: sb, sock: sb.Path("control.sock")}
}

// waitReady waits until the restarter found epoch n ready (LIVE on its
// /server_info) and returns it with its state file.
func (sb *safeSandbox) waitReady(n int) (epoch, state) {
	sb.t.Helper()
	e := sb.waitForked(n)
	sb.restarter.WaitLine(`epoch `+strconv.Itoa(n)+` is ready$`, 1, wait)
	st := sb.readState(n)
	require.Equal(sb.t, "LIVE", st.State, "epoch %d state", n)
	require.Equal(sb.t, e.PID, st.PID, "epoch %d pid", n)
	return e, st
}

// readyURL is Envoy's /server_info on the sandbox's admin.
func (sb *safeSandbox) readyURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d/server_info", sb.adminPort)
}

// startSafe runs the restarter with a validating check (the start script
// itself in --mode validate), readiness on /server_info and a control
// socket, plus flags.
func (sb *safeSandbox) startSafe(flags ...string) *proctest.Proc {
	sb.t.Helper()
	return sb.start(append([]string{
		"--check", sb.script, "--check-arg", "--mode", "--check-arg", "validate",
		"--ready-url", sb.readyURL(), "--control-socket", sb.sock,
	}, flags...)...)
}

// reload runs `restarter reload` and returns its exit code and output.
func (sb *safeSandbox) reload() (int, string) {
	sb.t.Helper()
	return runRestarter(sb.t, "reload", "--control-socket", sb.sock, "--timeout", wait.String())
}

// status runs `restarter status` and decodes it.
func (sb *safeSandbox) status() status.Status {
	sb.t.Helper()
	out, err := exec.Command(proctest.Binary(sb.t, "restarter"), "status", "--json", "--control-socket", sb.sock).Output()
	require.NoError(sb.t, err)
	var s status.Status
	require.NoError(sb.t, json.Unmarshal(out, &s))
	return s
}

// waitIdle waits until no hot restart is in progress or queued, and
// returns that status.
func (sb *safeSandbox) waitIdle() status.Status {
	sb.t.Helper()
	var s status.Status
	proctest.WaitFor(sb.t, wait, "no hot restart in progress or queued", func() bool {
		s = sb.status()
		return s.Restart == nil && !s.Queued
	})
	return s
}

// waitBurstHandled waits, after a burst of SIGHUPs, until the restarter
// handled one (a restarter still waiting for the CPU is idle too) and then
// until it is idle, and returns that status. The first SIGHUP handled starts
// a restart, and any other still pending is handled before it ends.
func (sb *safeSandbox) waitBurstHandled() status.Status {
	sb.t.Helper()
	sb.restarter.WaitLine(`got SIGHUP$`, 1, wait)
	return sb.waitIdle()
}

// breakConfig makes the config invalid (an unknown field, which Envoy
// refuses); fixConfig restores it.
func (sb *safeSandbox) breakConfig() {
	sb.t.Helper()
	f, err := os.OpenFile(sb.config, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(sb.t, err)
	_, err = f.WriteString("no_such_field: 1\n")
	require.NoError(sb.t, err)
	require.NoError(sb.t, f.Close())
}

func (sb *safeSandbox) fixConfig() { sb.config = sb.writeConfig("envoy.yaml", sb.port) }

var ignoreClock = cmp.Options{
	cmpopts.IgnoreFields(status.EpochStatus{}, "Started"),
	cmpopts.IgnoreFields(status.RestartStatus{}, "At"),
	cmpopts.IgnoreFields(status.Restart{}, "RequestedAt", "ForkedAt", "InitializedAt", "ReadyAt", "FinishedAt", "DurationSeconds"),
}

func TestCheckRefusesBadConfigWhileTrafficFlows(t *testing.T) {
	t.Parallel()
	// Given epoch 0 serving under load, behind a validating check (and old
	// epochs given the time to lose no request),
	sb := newSafeSandboxWith(t, "", losslessParentShutdownTime)
	r := sb.startSafe()
	e0, _ := sb.waitReady(0)
	l := fakeenvoytest.StartLoad(t, sb.addr(), 4)

	// when the config is broken and a hot restart is asked for, by reload and by SIGHUP,
	sb.breakConfig()
	code, out := sb.reload()
	r.Signal(syscall.SIGHUP)

	// then both are refused with the reason, no epoch 1 is started,
	require.Equal(t, 1, code)
	require.Contains(t, out, "restarter reload: hot restart to epoch 1 failed: check failed: "+sb.script+": exit status 1")
	r.WaitLine(`check refused hot restart to epoch 1: `, 2, wait)
	r.WaitLine(`check output: .*no_such_field`, 1, wait)
	require.Empty(t, r.Lines(`forking and execing new child process at epoch 1`))

	// and once it is fixed, a reload succeeds and epoch 1 takes over without a failed request.
	sb.fixConfig()
	code, out = sb.reload()
	require.Equal(t, 0, code, out)
	require.Regexp(t, `^hot restart to epoch 1: ready \(restart #3, \d+\.\d\ds\)\n$`, out)
	e1, _ := sb.waitReady(1)
	require.Equal(t, "exited with code=0", sb.waitReaped(e0))
	waitServed(t, l, 1)
	l.Finish()
	require.Empty(t, l.Failed())
	require.Positive(t, l.Served(0))
	require.Positive(t, l.Served(1))

	want := status.Status{
		Phase:       "running",
		Epochs:      []status.EpochStatus{{Epoch: 1, PID: e1.PID, State: "live"}},
		LastRestart: &status.RestartStatus{Epoch: 1, Result: "ok"},
		Counters: status.Counters{SIGHUPs: 1, Reloads: 2, Restarts: 3, RestartsFailed: 2, ChecksFailed: 2,
			Outcomes: map[string]int{"ok": 1, "refused": 2}},
		Restarts: []status.Restart{
			{ID: 1, Epoch: 1, Trigger: "reload", Outcome: "refused", Reason: "check failed: " + sb.script + ": exit status 1"},
			{ID: 2, Epoch: 1, Trigger: "SIGHUP", Outcome: "refused", Reason: "check failed: " + sb.script + ": exit status 1"},
			{ID: 3, Epoch: 1, Trigger: "reload", Outcome: "ok"},
		},
	}
	require.Empty(t, cmp.Diff(want, sb.status(), ignoreClock))
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	sb.requireAllGone()
}

func TestSIGHUPBurstIsCoalesced(t *testing.T) {
	t.Parallel()
	// Given epochs that take 300ms to initialize, under load,
	sb := newSafeSandbox(t, `fakeenvoy --base-id "$BASE_ID" --fake-ready-delay 300ms "$@"`+"\n")
	r := sb.startSafe()
	sb.waitReady(0)
	l := fakeenvoytest.StartLoad(t, sb.addr(), 4)

	// when 10 SIGHUPs arrive within 100ms,
	tick := time.NewTicker(10 * time.Millisecond)
	for range 10 {
		r.Signal(syscall.SIGHUP)
		<-tick.C
	}
	tick.Stop()

	// then they become a few restarts, one after the other, and none fails.
	s := sb.waitBurstHandled()
	require.Equal(t, "running", s.Phase)
	// (At least one: signals pending at once are one for the kernel, so
	// ten SIGHUPs sent while the restarter waits for the CPU may be one.)
	require.GreaterOrEqual(t, s.Counters.Restarts, 1)
	require.LessOrEqual(t, s.Counters.Restarts, 3, "10 SIGHUPs within one 300ms initialization coalesce")
	require.LessOrEqual(t, s.Counters.Restarts, len(r.Lines(`got SIGHUP$`)), "restarts without a SIGHUP")
	require.Zero(t, s.Counters.RestartsFailed)
	require.Empty(t, r.Lines(`previous envoy process is still initializing`))
	requireOneInitializingAtATime(t, r, 1)
	requireGrandparentsTold(t, r.Output(), sb.forked())
	last := s.LastRestart.Epoch
	sb.waitReady(last)
	waitServed(t, l, last)
	l.Finish()
	requireNoRefusedConnection(t, l)
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	sb.requireAllGone()
}

// requireNoRefusedConnection checks what Envoy guarantees to clients under
// a burst of hot restarts: the listen socket passes from epoch to epoch, so
// no connection is refused. It does not promise that every request is
// answered: an epoch started right after its parent went live terminates
// its grandparent at once, with the requests it still holds, before its
// drain time is over (for no-loss restarts, see TestHotRestartUnderLoad).
func requireNoRefusedConnection(t *testing.T, l *fakeenvoytest.Load) {
	t.Helper()
	require.Empty(t, l.Refused(), "refused connections")
	t.Logf("%d requests answered, %d cut short by a terminated epoch", len(l.Answered()), len(l.Failed()))
}

// requireOneInitializingAtATime checks, from the restarter's log, that every
// epoch from first on was forked only after the previous one was ready.
// (Without a probe, epoch 0 may be ready without a log line: the init gate
// may find it done already; check from 2 then.)
func requireOneInitializingAtATime(t *testing.T, r *proctest.Proc, first int) {
	t.Helper()
	ready := map[int]bool{}
	for _, line := range strings.Split(r.Output(), "\n") {
		var n int
		if _, err := fmt.Sscanf(restarterMessage(line), "epoch %d is ready", &n); err == nil {
			ready[n] = true
		}
		if _, err := fmt.Sscanf(restarterMessage(line), "forking and execing new child process at epoch %d", &n); err == nil && n >= first {
			require.True(t, ready[n-1], "epoch %d forked before epoch %d was ready", n, n-1)
		}
	}
}

// restarterMessage returns the message of a restarter log line, "" for others.
func restarterMessage(line string) string {
	_, msg, ok := strings.Cut(line, "[restarter] ")
	if !ok {
		return ""
	}
	return msg
}

func TestSIGHUPStormWithReadinessGate(t *testing.T) {
	t.Parallel()
	// Given the readiness gate and epochs that take a while to initialize,
	sb := newSafeSandbox(t, `fakeenvoy --base-id "$BASE_ID" --fake-ready-delay 50ms "$@"`+"\n")
	r := sb.startSafe()
	sb.waitReady(0)
	l := fakeenvoytest.StartLoad(t, sb.addr(), 4)

	// when 200 SIGHUPs arrive as fast as they can be sent,
	for range 200 {
		r.Signal(syscall.SIGHUP)
	}

	// then the storm is coalesced and the service survives it: no failed
	// restart, no refused connection, no zombie left, a clean exit on SIGTERM.
	s := sb.waitBurstHandled()
	require.Equal(t, "running", s.Phase)
	require.Zero(t, s.Counters.RestartsFailed)
	require.Empty(t, r.Lines(`previous envoy process is still initializing|Due to abnormal exit`))
	requireOneInitializingAtATime(t, r, 1)
	// (A child is a zombie for a moment between its exit and the reap: wait
	// for the restarter to reap every one, rather than sample once.)
	proctest.WaitFor(t, wait, "the restarter to reap every child that exited", func() bool {
		_, zombies := proctest.Children(r.PID())
		return zombies == 0
	})
	requireGrandparentsTold(t, r.Output(), sb.forked())
	sb.waitReady(s.LastRestart.Epoch)
	l.Finish()
	requireNoRefusedConnection(t, l)
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	sb.requireAllGone()
}

func TestReloadExitCodes(t *testing.T) {
	t.Parallel()
	// Given epoch 2 (only) too slow to get ready within --ready-timeout,
	sb := newSafeSandbox(t, `if [ "$RESTART_EPOCH" = 2 ]; then set -- --fake-ready-delay 60s "$@"; fi
fakeenvoy --base-id "$BASE_ID" "$@"
`)
	// (5s: a healthy epoch must get ready within it on a busy machine.)
	r := sb.startSafe("--ready-timeout", "5s")
	sb.waitReady(0)

	// a reload to a good config exits 0,
	code, out := sb.reload()
	require.Equal(t, 0, code, out)
	sb.waitReady(1)

	// one the check refuses exits 1 with the reason, and Envoy keeps serving,
	sb.breakConfig()
	code, out = sb.reload()
	require.Equal(t, 1, code)
	require.Contains(t, out, "hot restart to epoch 2 failed: check failed: ")
	require.Equal(t, "running", sb.status().Phase)

	// and one whose epoch is not ready in time exits 1, and everything is shut down.
	sb.fixConfig()
	code, out = sb.reload()
	require.Equal(t, 1, code)
	require.Equal(t, "restarter reload: hot restart to epoch 2 failed: epoch 2 not ready within --ready-timeout=5s: Envoy's INITIALIZING flag is still set; GET "+sb.readyURL()+": epoch 2 is INITIALIZING\n", out)
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	r.WaitLine(abnormalRE, 1, wait)
	sb.requireAllGone()
}

func TestBaseIDHandOffAcrossFiveRestarts(t *testing.T) {
	t.Parallel()
	// Given examples/start_envoy.sh as shipped, envoy on PATH (fakeenvoy),
	// and the restarter handing the base id over,
	sb := newSafeSandbox(t, "")
	script, env := sb.startEnvoyScript()
	baseIDPath := sb.Path("base-id")
	env = append(env, "ENVOY_INOTIFY_MAX_USER_WATCHES=") // this scenario is not about the sysctl
	r := proctest.Start(t, proctest.Options{Dir: sb.Dir, Env: env}, proctest.Binary(t, "restarter"),
		"--base-id-path", baseIDPath, "--ready-url", sb.readyURL(), script,
		"--fake-drain-time", drainTime.String(), "--fake-parent-shutdown-time", parentShutdownTime.String())
	sb.restarter = r

	// when it is hot restarted five times (each SIGHUP once the last epoch is ready),
	_, info := waitServing(t, sb.sandbox, 0)
	id := readBaseID(t, baseIDPath)
	require.Equal(t, id, info.Options.BaseID)
	for n := 1; n <= 5; n++ {
		r.WaitLine(`epoch `+strconv.Itoa(n-1)+` is ready`, 1, wait)
		// Epoch n takes the domain socket ids of epoch n-3 (ids wrap at 3),
		// which may still be exiting (Envoy promises the telling, not the
		// exit): the restarter itself holds the restart until it is gone.
		r.Signal(syscall.SIGHUP)
		_, info := waitServing(t, sb.sandbox, n)

		// then every epoch runs with epoch 0's dynamic id.
		require.Equal(t, id, info.Options.BaseID, "epoch %d", n)
	}
	require.Empty(t, r.Lines(`cannot use --restart-epoch`))
	require.Empty(t, r.Lines(`unable to bind domain socket`))
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	sb.requireAllGone()
}

// waitServed waits until epoch n answered one of l's requests.
func waitServed(t *testing.T, l *fakeenvoytest.Load, n int) {
	t.Helper()
	proctest.WaitFor(t, wait, "epoch "+strconv.Itoa(n)+" to answer the load", func() bool { return l.Served(n) > 0 })
}
