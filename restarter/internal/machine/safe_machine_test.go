package machine

import (
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/status"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var testNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// safePolicy turns every safe-restart feature on.
var safePolicy = Policy{
	TermWait: testTermWait, Check: true, Readiness: true, ReadyTimeout: 10 * time.Second, Notify: true,
	Clock: func() time.Time { return testNow },
}

// Reload requests, each with its own waiter.
var w1, w2, w3, w4 = Waiter(1), Waiter(2), Waiter(3), Waiter(4)

var (
	readyTimeout     = SetTimer{Timer: ReadyTimeoutTimer, After: 10 * time.Second}
	stopReadyTimeout = StopTimer{Timer: ReadyTimeoutTimer}
)

func checking(epoch int) []Action {
	return do(Notify{Reloading: true, Status: "hot restart to epoch " + itoa(epoch)}, RunCheck{Epoch: epoch})
}

// watched: epoch is spawned as pid, and probed until ready or the timeout.
func watched(epoch, pid int) step {
	return step{Spawned{Epoch: epoch, PID: pid}, do(WatchReady{Epoch: epoch, PID: pid}, readyTimeout)}
}

func live(epoch, pid int) Notify {
	return Notify{Ready: true, Status: "epoch " + itoa(epoch) + " live (PID=" + itoa(pid) + ")"}
}

func failed(epoch int, reason string) Notify {
	return Notify{Ready: true, Status: "hot restart to epoch " + itoa(epoch) + " failed: " + reason}
}

const shuttingDown = "shutting down: " + abnormal

const abnormal = "Due to abnormal exit, force killing all child processes and exiting"

// epoch0Ready: epoch 0 (pid 100) started and ready.
var epoch0Ready = []step{
	{Started{}, do(Spawn{Epoch: 0})},
	watched(0, 100),
	{Ready{Epoch: 0}, do(stopReadyTimeout, live(0, 100))},
}

// epoch1Starting: epoch 0 ready, epoch 1 (pid 101) spawned after its check,
// not ready yet.
var epoch1Starting = then(epoch0Ready,
	step{hup, checking(1)},
	step{CheckFinished{Epoch: 1}, do(Spawn{Epoch: 1})},
	watched(1, 101),
)

func TestMachineSafeRestarts(t *testing.T) {
	tests := []struct {
		name   string
		steps  []step
		status status.Status
	}{
		{
			name:  "epoch 0 is ready: READY=1, and its ready timeout is stopped",
			steps: epoch0Ready,
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 0, Result: "ok", At: testNow}},
		},
		{
			name: "SIGHUPs during a restart are coalesced into one restart after readiness",
			steps: then(epoch0Ready,
				step{hup, checking(1)},
				step{hup, nil}, // queued
				step{CheckFinished{Epoch: 1}, do(Spawn{Epoch: 1})},
				watched(1, 101),
				step{hup, nil},
				step{hup, nil},
				// Epoch 2 starts only once epoch 1 is ready: never two initializing.
				step{Ready{Epoch: 1}, cat(do(stopReadyTimeout, live(1, 101)), checking(2))},
				step{CheckFinished{Epoch: 2}, do(Spawn{Epoch: 2})},
				watched(2, 102),
			),
			status: status.Status{Phase: "running",
				Epochs: []status.EpochStatus{
					{Epoch: 0, PID: 100, Started: testNow, State: "draining"},
					{Epoch: 1, PID: 101, Started: testNow, State: "live"},
					{Epoch: 2, PID: 102, Started: testNow, State: "starting"},
				},
				Restart:     &status.RestartStatus{Epoch: 2, Stage: "starting"},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 4, Restarts: 2}},
		},
		{
			name: "SIGUSR1 reaches a starting epoch only once it is ready",
			steps: then(epoch1Starting,
				step{usr1, do(sends(100, SIGUSR1))},
				step{usr1, do(sends(100, SIGUSR1))},
				step{Ready{Epoch: 1}, do(sends(101, SIGUSR1), stopReadyTimeout, live(1, 101))}, // once, for both
			),
			status: status.Status{Phase: "running",
				Epochs: []status.EpochStatus{
					{Epoch: 0, PID: 100, Started: testNow, State: "draining"},
					{Epoch: 1, PID: 101, Started: testNow, State: "live"},
				},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Restarts: 1}},
		},
		{
			name: "a failed check starts no epoch; the running epochs keep serving",
			steps: then(epoch0Ready,
				step{hup, checking(1)},
				step{CheckFinished{Epoch: 1, Err: "validate.sh: exit status 1", Output: "error: bad listener\nsecond line\n"},
					do(failed(1, "check failed: validate.sh: exit status 1"))},
				// The next attempt reuses epoch 1: Envoy needs consecutive epochs.
				step{hup, checking(1)},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &status.RestartStatus{Epoch: 1, Stage: "checking"},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "check failed: validate.sh: exit status 1", At: testNow},
				Counters:    status.Counters{SIGHUPs: 2, Restarts: 2, RestartsFailed: 1, ChecksFailed: 1}},
		},
		{
			name: "a SIGHUP queued behind a failed check retries it (the config may be fixed by now)",
			steps: then(epoch0Ready,
				step{hup, checking(1)},
				step{hup, nil},
				step{CheckFinished{Epoch: 1, Err: "exit status 1"}, cat(do(failed(1, "check failed: exit status 1")), checking(1))},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &status.RestartStatus{Epoch: 1, Stage: "checking"},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "check failed: exit status 1", At: testNow},
				Counters:    status.Counters{SIGHUPs: 2, Restarts: 2, RestartsFailed: 1, ChecksFailed: 1}},
		},
		{
			name: "a queued SIGHUP is not lost when the new epoch exits 0 before it is ready, and reuses its number",
			steps: then(epoch0Ready,
				step{hup, checking(1)},
				step{hup, nil},
				step{CheckFinished{Epoch: 1}, do(Spawn{Epoch: 1})},
				watched(1, 101),
				// Its watch and ready timeout are stopped with it; epoch 1 never
				// served, so the next Envoy's parent is epoch 0: it is epoch 1 again.
				step{Exited{PID: 101}, cat(do(StopWatch{Epoch: 1}, stopReadyTimeout,
					failed(1, "epoch 1 exited with code=0 before it was ready")), checking(1))},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &status.RestartStatus{Epoch: 1, Stage: "checking"},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 exited with code=0 before it was ready", At: testNow},
				Counters:    status.Counters{SIGHUPs: 2, Restarts: 2, RestartsFailed: 1}},
		},
		{
			name: "a new epoch not ready in time is killed, its watch stopped, and counts as failed",
			steps: then(epoch1Starting,
				step{TimerFired{Timer: ReadyTimeoutTimer}, do(StopWatch{Epoch: 1}, sends(101, SIGKILL))},
				step{Ready{Epoch: 1}, nil}, // from the stopped watch: too late
				step{Exited{PID: 101, Signal: SIGKILL}, do(
					// No READY=1 just before STOPPING=1.
					Notify{Stopping: true, Status: shuttingDown},
					sends(100, SIGKILL), killWait)},
			),
			status: status.Status{Phase: "killing", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 not ready within --ready-timeout=10s: no probe has finished yet", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name: "a ready timeout left from an earlier restart kills nothing",
			steps: then(epoch1Starting,
				step{Ready{Epoch: 1}, do(stopReadyTimeout, live(1, 101))},
				step{TimerFired{Timer: ReadyTimeoutTimer}, nil},
			),
			status: status.Status{Phase: "running",
				Epochs: []status.EpochStatus{
					{Epoch: 0, PID: 100, Started: testNow, State: "draining"},
					{Epoch: 1, PID: 101, Started: testNow, State: "live"},
				},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Restarts: 1}},
		},
		{
			name: "reloads are answered with the outcome of the restart they started or joined",
			steps: then(epoch0Ready,
				step{ReloadRequested{Waiter: w1}, checking(1)},
				step{ReloadRequested{Waiter: w2}, nil},
				step{CheckFinished{Epoch: 1}, do(Spawn{Epoch: 1})},
				watched(1, 101),
				step{Ready{Epoch: 1}, cat(do(stopReadyTimeout, ReloadResult{Waiter: w1, OK: true, Epoch: 1}, live(1, 101)), checking(2))},
				step{CheckFinished{Epoch: 2, Err: "exit status 1"}, do(
					ReloadResult{Waiter: w2, Epoch: 2, Reason: "check failed: exit status 1"},
					failed(2, "check failed: exit status 1"))},
				step{ReloadRequested{Waiter: w3}, checking(2)},
				step{term, do(
					Notify{Stopping: true, Status: "shutting down"},
					StopCheck{Epoch: 2},
					ReloadResult{Waiter: w3, Epoch: 2, Reason: "shutdown in progress"},
					sends(101, SIGTERM), holdOlder, termWait)},
				step{ReloadRequested{Waiter: w4}, do(ReloadResult{Waiter: w4, Reason: "shutdown in progress"})},
				step{CheckFinished{Epoch: 2}, nil}, // from the stopped check
			),
			status: status.Status{Phase: "terminating",
				Epochs: []status.EpochStatus{
					{Epoch: 0, PID: 100, Started: testNow, State: "draining"},
					{Epoch: 1, PID: 101, Started: testNow, State: "live"},
				},
				LastRestart: &status.RestartStatus{Epoch: 2, Result: "failed", Reason: "shutdown in progress", At: testNow},
				Counters:    status.Counters{Reloads: 4, Restarts: 3, RestartsFailed: 2, ChecksFailed: 1}},
		},
		{
			name: "an epoch dying before it is ready fails its restart, its queued one and everything",
			steps: then(epoch0Ready,
				step{ReloadRequested{Waiter: w1}, checking(1)},
				step{CheckFinished{Epoch: 1}, do(Spawn{Epoch: 1})},
				watched(1, 101),
				step{ReloadRequested{Waiter: w2}, nil}, // queued
				step{Exited{PID: 101, Code: 1}, do(
					StopWatch{Epoch: 1}, stopReadyTimeout,
					Notify{Stopping: true, Status: shuttingDown}, // no READY=1 just before it
					ReloadResult{Waiter: w1, Epoch: 1, Reason: "epoch 1 exited with code=1 before it was ready"},
					ReloadResult{Waiter: w2, Reason: "shutdown in progress: " + abnormal},
					sends(100, SIGKILL), killWait)},
			),
			status: status.Status{Phase: "killing", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 exited with code=1 before it was ready", At: testNow},
				Counters:    status.Counters{Reloads: 2, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name: "SIGTERM while an epoch starts stops its watch and ready timeout",
			steps: then(epoch1Starting,
				step{ReloadRequested{Waiter: w1}, nil}, // queued
				step{term, do(
					Notify{Stopping: true, Status: "shutting down"},
					stopReadyTimeout,
					ReloadResult{Waiter: w1, Reason: "shutdown in progress"},
					StopWatch{Epoch: 1},
					sends(101, SIGTERM), holdOlder, termWait)},
				step{Ready{Epoch: 1}, nil}, // from the stopped watch
				step{Exited{PID: 101}, do(stopOlder, sends(100, SIGTERM))},
				step{Exited{PID: 100}, do(Exit{Code: 0})},
			),
			status: status.Status{Phase: "exited", Epochs: []status.EpochStatus{},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "shutdown in progress", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Reloads: 1, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name: "the last epoch exiting during a check answers the reload before the exit",
			steps: then(epoch0Ready,
				step{ReloadRequested{Waiter: w1}, checking(1)},
				step{ReloadRequested{Waiter: w2}, nil}, // queued
				step{Exited{PID: 100}, do(
					StopCheck{Epoch: 1},
					ReloadResult{Waiter: w1, Epoch: 1, Reason: "the restarter is exiting"},
					ReloadResult{Waiter: w2, Reason: "the restarter is exiting"},
					Exit{Code: 0})},
				step{CheckFinished{Epoch: 1}, nil},
			),
			status: status.Status{Phase: "exited", Epochs: []status.EpochStatus{},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "the restarter is exiting", At: testNow},
				Counters:    status.Counters{Reloads: 2, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name: "the last epoch dying during a check: the reload is answered, exit 1",
			steps: then(epoch0Ready,
				step{ReloadRequested{Waiter: w1}, checking(1)},
				step{Exited{PID: 100, Signal: SIGSEGV}, do(
					Notify{Stopping: true, Status: shuttingDown},
					StopCheck{Epoch: 1},
					ReloadResult{Waiter: w1, Epoch: 1, Reason: "shutdown in progress: " + abnormal},
					Exit{Code: 1})},
			),
			status: status.Status{Phase: "exited", Epochs: []status.EpochStatus{},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "shutdown in progress: " + abnormal, At: testNow},
				Counters:    status.Counters{Reloads: 1, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name: "a failed spawn answers the reload and KILLs the others",
			steps: then(epoch0Ready,
				step{ReloadRequested{Waiter: w1}, checking(1)},
				step{CheckFinished{Epoch: 1}, do(Spawn{Epoch: 1})},
				step{SpawnFailed{Epoch: 1, Err: "cannot execute /x: too many open files (errno=24 EMFILE)"}, do(
					Notify{Stopping: true, Status: shuttingDown}, // no READY=1 just before it
					ReloadResult{Waiter: w1, Epoch: 1, Reason: "epoch could not be started: cannot execute /x: too many open files (errno=24 EMFILE)"},
					sends(100, SIGKILL), killWait)},
			),
			status: status.Status{Phase: "killing", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch could not be started: cannot execute /x: too many open files (errno=24 EMFILE)", At: testNow},
				Counters:    status.Counters{Reloads: 1, Restarts: 1, RestartsFailed: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { playToStatus(t, safePolicy, tt.steps, tt.status) })
	}
}

// playToStatus plays steps on a machine following p, then compares its
// status with want (nil Epochs meaning none).
func playToStatus(t *testing.T, p Policy, steps []step, want status.Status) {
	t.Helper()
	m := New(p)
	play(t, m, steps)
	if want.Epochs == nil {
		want.Epochs = []status.EpochStatus{}
	}
	// The history and its counts have tests of their own (history_test.go).
	ignoreHistory := cmp.Options{cmpopts.IgnoreFields(status.Status{}, "Restarts"), cmpopts.IgnoreFields(status.Counters{}, "Outcomes")}
	if diff := cmp.Diff(want, m.Status(), ignoreHistory); diff != "" {
		t.Errorf("status mismatch (-want +got):\n%s", diff)
	}
}

// TestMachineNeverTwoEpochsInitializing feeds a storm of SIGHUPs and
// readiness reports in every interleaving the loop allows and checks that a
// new epoch is never spawned while another is still starting.
func TestMachineNeverTwoEpochsInitializing(t *testing.T) {
	p := safePolicy
	p.Check = false
	stormOneStartingAtATime(t, p, false, func(epoch int) Event { return Ready{Epoch: epoch} })
}

// stormOneStartingAtATime feeds 300 SIGHUPs to a machine following p, with
// the epochs spawned (as Envoy when envoy) and done(epoch) for each starting
// epoch after every third, and checks that no epoch is spawned while
// another is starting and that the SIGHUPs were coalesced.
func stormOneStartingAtATime(t *testing.T, p Policy, envoy bool, done func(epoch int) Event) {
	t.Helper()
	m := New(p)
	pid := 100
	starting := map[int]bool{} // epochs spawned and not done yet
	pids := map[int]int{}      // the pid of each epoch
	var feed func(ev Event)
	feed = func(ev Event) {
		t.Helper()
		for _, a := range m.Handle(ev) {
			if s, ok := a.(Spawn); ok {
				if len(starting) > 0 {
					t.Fatalf("epoch %d spawned while %v still starting", s.Epoch, starting)
				}
				starting[s.Epoch] = true
				pid++
				pids[s.Epoch] = pid
				feed(Spawned{Epoch: s.Epoch, PID: pid, Envoy: envoy})
			}
		}
	}
	feed(Started{})
	for i := 0; i < 300; i++ {
		feed(hup)
		if i%3 == 0 {
			for e := range starting {
				delete(starting, e)
				feed(done(e))
				// As Envoy: the grandparent was told to terminate; it exits.
				if old, ok := pids[e-2]; ok {
					delete(pids, e-2)
					feed(Exited{PID: old})
				}
			}
		}
	}
	if got := m.Status().Counters.Restarts; got < 50 || got > 101 {
		t.Fatalf("%d restarts for 300 SIGHUPs, one done every 3rd; want them coalesced to about 100", got)
	}
}
