package supervisor

import (
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var testNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// safePolicy turns every safe-restart feature on.
var safePolicy = Policy{
	TermWait: testTermWait, Check: true, Readiness: true, ReadyTimeout: 10 * time.Second, Notify: true,
	Clock: func() time.Time { return testNow },
}

func checking(epoch int) []Action {
	return []Action{
		Notify{Reloading: true, Status: "hot restart to epoch " + itoa(epoch)},
		say("checking before hot restart to epoch "+itoa(epoch), "epoch", epoch),
		RunCheck{Epoch: epoch},
	}
}

func forkedWatched(epoch, pid int) step {
	return step{Spawned{Epoch: epoch, PID: pid}, []Action{
		say("forked new child process with PID="+itoa(pid), "pid", pid, "epoch", epoch),
		WatchReady{Epoch: epoch, PID: pid},
		SetTimer{Timer: ReadyTimeoutTimer, After: 10 * time.Second},
	}}
}

func readyLive(epoch, pid int) []Action {
	return []Action{
		say("epoch "+itoa(epoch)+" is ready", "epoch", epoch, "pid", pid),
		Notify{Ready: true, Status: "epoch " + itoa(epoch) + " live (PID=" + itoa(pid) + ")"},
	}
}

func queued(epoch int, what string) Action {
	return say("hot restart to epoch " + itoa(epoch) + " in progress; " + what + " queued for after it")
}

// epoch0Ready: epoch 0 (pid 100) started and ready.
var epoch0Ready = []step{
	{Started{}, forking(0)},
	forkedWatched(0, 100),
	{Ready{Epoch: 0}, readyLive(0, 100)},
}

func TestMachineSafeRestarts(t *testing.T) {
	hup := Signaled{Signal: syscall.SIGHUP}
	tests := []struct {
		name   string
		steps  []step
		status Status
	}{
		{
			name:  "epoch 0 is ready: READY=1",
			steps: epoch0Ready,
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &RestartStatus{Epoch: 0, Result: "ok", At: testNow}},
		},
		{
			name: "SIGHUPs during a restart are coalesced into one restart after readiness",
			steps: append(append([]step{}, epoch0Ready...),
				step{hup, cat(say("got SIGHUP"), checking(1))},
				step{hup, cat(say("got SIGHUP"), queued(1, "SIGHUP"))},
				step{CheckFinished{Epoch: 1}, cat(say("check passed for epoch 1", "epoch", 1), forking(1))},
				forkedWatched(1, 101),
				step{hup, cat(say("got SIGHUP"), queued(1, "SIGHUP"))},
				step{hup, cat(say("got SIGHUP"), queued(1, "SIGHUP"))},
				// Epoch 2 starts only once epoch 1 is ready: never two initializing.
				step{Ready{Epoch: 1}, cat(readyLive(1, 101), say("starting the queued hot restart"), checking(2))},
				step{CheckFinished{Epoch: 2}, cat(say("check passed for epoch 2", "epoch", 2), forking(2))},
				forkedWatched(2, 102),
			),
			status: Status{Phase: "running",
				Epochs: []EpochStatus{
					{Epoch: 0, PID: 100, Started: testNow, State: "draining"},
					{Epoch: 1, PID: 101, Started: testNow, State: "live"},
					{Epoch: 2, PID: 102, Started: testNow, State: "starting"},
				},
				Restart:     &RestartStatus{Epoch: 2, Stage: "starting"},
				LastRestart: &RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    Counters{SIGHUPs: 4, Restarts: 2}},
		},
		{
			name: "SIGUSR1 reaches a starting epoch only once it is ready",
			steps: append(append([]step{}, epoch0Ready...),
				step{hup, cat(say("got SIGHUP"), checking(1))},
				step{CheckFinished{Epoch: 1}, cat(say("check passed for epoch 1", "epoch", 1), forking(1))},
				forkedWatched(1, 101),
				step{Signaled{Signal: syscall.SIGUSR1}, cat(say("got SIGUSR1"),
					sending("SIGUSR1", syscall.SIGUSR1, 100, 0),
					say("deferring SIGUSR1 to PID=101 until epoch 1 is ready", "pid", 101, "epoch", 1))},
				step{Signaled{Signal: syscall.SIGUSR1}, cat(say("got SIGUSR1"),
					sending("SIGUSR1", syscall.SIGUSR1, 100, 0),
					say("deferring SIGUSR1 to PID=101 until epoch 1 is ready", "pid", 101, "epoch", 1))},
				step{Ready{Epoch: 1}, cat(say("epoch 1 is ready", "epoch", 1, "pid", 101),
					sending("SIGUSR1", syscall.SIGUSR1, 101, 1), // once, for both
					Notify{Ready: true, Status: "epoch 1 live (PID=101)"})},
			),
			status: Status{Phase: "running",
				Epochs: []EpochStatus{
					{Epoch: 0, PID: 100, Started: testNow, State: "draining"},
					{Epoch: 1, PID: 101, Started: testNow, State: "live"},
				},
				LastRestart: &RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    Counters{SIGHUPs: 1, Restarts: 1}},
		},
		{
			name: "a failed check starts no epoch; the running epochs keep serving",
			steps: append(append([]step{}, epoch0Ready...),
				step{hup, cat(say("got SIGHUP"), checking(1))},
				step{CheckFinished{Epoch: 1, Err: "validate.sh: exit status 1", Output: "error: bad listener\nsecond line\n"}, cat(
					Log{Level: slog.LevelError, Msg: "check refused hot restart to epoch 1: validate.sh: exit status 1", Args: []any{"epoch", 1}},
					Log{Level: slog.LevelError, Msg: "check output: error: bad listener", Args: []any{"epoch", 1}},
					Log{Level: slog.LevelError, Msg: "check output: second line", Args: []any{"epoch", 1}},
					Notify{Ready: true, Status: "hot restart to epoch 1 failed: check failed: validate.sh: exit status 1"},
				)},
				// The next attempt reuses epoch 1: Envoy needs consecutive epochs.
				step{hup, cat(say("got SIGHUP"), checking(1))},
			),
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &RestartStatus{Epoch: 1, Stage: "checking"},
				LastRestart: &RestartStatus{Epoch: 1, Result: "failed", Reason: "check failed: validate.sh: exit status 1", At: testNow},
				Counters:    Counters{SIGHUPs: 2, Restarts: 2, RestartsFailed: 1, ChecksFailed: 1}},
		},
		{
			name: "a SIGHUP queued behind a failed check retries it (the config may be fixed by now)",
			steps: append(append([]step{}, epoch0Ready...),
				step{hup, cat(say("got SIGHUP"), checking(1))},
				step{hup, cat(say("got SIGHUP"), queued(1, "SIGHUP"))},
				step{CheckFinished{Epoch: 1, Err: "exit status 1"}, cat(
					Log{Level: slog.LevelError, Msg: "check refused hot restart to epoch 1: exit status 1", Args: []any{"epoch", 1}},
					Notify{Ready: true, Status: "hot restart to epoch 1 failed: check failed: exit status 1"},
					say("starting the queued hot restart"), checking(1))},
			),
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &RestartStatus{Epoch: 1, Stage: "checking"},
				LastRestart: &RestartStatus{Epoch: 1, Result: "failed", Reason: "check failed: exit status 1", At: testNow},
				Counters:    Counters{SIGHUPs: 2, Restarts: 2, RestartsFailed: 1, ChecksFailed: 1}},
		},
		{
			name: "a queued SIGHUP is not lost when the new epoch exits 0 before it is ready",
			steps: append(append([]step{}, epoch0Ready...),
				step{hup, cat(say("got SIGHUP"), checking(1))},
				step{hup, cat(say("got SIGHUP"), queued(1, "SIGHUP"))},
				step{CheckFinished{Epoch: 1}, cat(say("check passed for epoch 1", "epoch", 1), forking(1))},
				forkedWatched(1, 101),
				step{Exited{PID: 101}, cat(exitedOK(101, 1),
					Notify{Ready: true, Status: "hot restart to epoch 1 failed: epoch 1 exited with code=0 before it was ready"},
					say("starting the queued hot restart"), checking(2))},
			),
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &RestartStatus{Epoch: 2, Stage: "checking"},
				LastRestart: &RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 exited with code=0 before it was ready", At: testNow},
				Counters:    Counters{SIGHUPs: 2, Restarts: 2, RestartsFailed: 1}},
		},
		{
			name: "a new epoch not ready in time is killed and counts as failed",
			steps: append(append([]step{}, epoch0Ready...),
				step{hup, cat(say("got SIGHUP"), checking(1))},
				step{CheckFinished{Epoch: 1}, cat(say("check passed for epoch 1", "epoch", 1), forking(1))},
				forkedWatched(1, 101),
				step{TimerFired{Timer: ReadyTimeoutTimer}, cat(
					Log{Level: slog.LevelError, Msg: "epoch 1 not ready within --ready-timeout=10s; killing it", Args: []any{"epoch", 1, "pid", 101}},
					Kill{PID: 101, Signal: syscall.SIGKILL})},
				step{Ready{Epoch: 1}, cat(say("epoch 1 is ready", "epoch", 1, "pid", 101))}, // too late: already failed
				step{Exited{PID: 101, Signal: syscall.SIGKILL}, cat(
					killedBy(101, 1, syscall.SIGKILL),
					warn(abnormal), // no READY=1 just before STOPPING=1
					Notify{Stopping: true, Status: "shutting down: " + abnormal},
					forceKill(100, 0), SetTimer{Timer: KillWaitTimer, After: KillWait})},
			),
			status: Status{Phase: "killing", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 not ready within --ready-timeout=10s", At: testNow},
				Counters:    Counters{SIGHUPs: 1, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name: "reloads are answered with the outcome of the restart they started or joined",
			steps: append(append([]step{}, epoch0Ready...),
				step{ReloadRequested{ID: 1}, checking(1)},
				step{ReloadRequested{ID: 2}, cat(queued(1, "reload request"))},
				step{CheckFinished{Epoch: 1}, cat(say("check passed for epoch 1", "epoch", 1), forking(1))},
				forkedWatched(1, 101),
				step{Ready{Epoch: 1}, cat(say("epoch 1 is ready", "epoch", 1, "pid", 101), ReloadResult{ID: 1, OK: true, Epoch: 1},
					Notify{Ready: true, Status: "epoch 1 live (PID=101)"}, say("starting the queued hot restart"), checking(2))},
				step{CheckFinished{Epoch: 2, Err: "exit status 1"}, cat(
					Log{Level: slog.LevelError, Msg: "check refused hot restart to epoch 2: exit status 1", Args: []any{"epoch", 2}},
					ReloadResult{ID: 2, Epoch: 2, Reason: "check failed: exit status 1"},
					Notify{Ready: true, Status: "hot restart to epoch 2 failed: check failed: exit status 1"})},
				step{ReloadRequested{ID: 3}, checking(2)},
				step{Signaled{Signal: syscall.SIGTERM}, cat(say("got SIGTERM"),
					Notify{Stopping: true, Status: "shutting down"},
					ReloadResult{ID: 3, Epoch: 2, Reason: "shutdown in progress"},
					sending("TERM", syscall.SIGTERM, 100, 0), sending("TERM", syscall.SIGTERM, 101, 1),
					SetTimer{Timer: TermWaitTimer, After: testTermWait})},
				step{ReloadRequested{ID: 4}, cat(ReloadResult{ID: 4, Reason: "shutdown in progress"})},
				step{CheckFinished{Epoch: 2}, nil}, // abandoned by the shutdown
			),
			status: Status{Phase: "terminating",
				Epochs: []EpochStatus{
					{Epoch: 0, PID: 100, Started: testNow, State: "draining"},
					{Epoch: 1, PID: 101, Started: testNow, State: "live"},
				},
				LastRestart: &RestartStatus{Epoch: 2, Result: "failed", Reason: "shutdown in progress", At: testNow},
				Counters:    Counters{Reloads: 4, Restarts: 3, RestartsFailed: 2, ChecksFailed: 1}},
		},
		{
			name: "an epoch dying before it is ready fails its restart and everything",
			steps: append(append([]step{}, epoch0Ready...),
				step{ReloadRequested{ID: 1}, checking(1)},
				step{CheckFinished{Epoch: 1}, cat(say("check passed for epoch 1", "epoch", 1), forking(1))},
				forkedWatched(1, 101),
				step{Exited{PID: 101, Code: 1}, cat(exitedCode(101, 1, 1),
					warn(abnormal), Notify{Stopping: true, Status: "shutting down: " + abnormal},
					ReloadResult{ID: 1, Epoch: 1, Reason: "epoch 1 exited with code=1 before it was ready"},
					forceKill(100, 0), SetTimer{Timer: KillWaitTimer, After: KillWait})},
			),
			status: Status{Phase: "killing", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 exited with code=1 before it was ready", At: testNow},
				Counters:    Counters{Reloads: 1, Restarts: 1, RestartsFailed: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMachine(safePolicy)
			for i, s := range tt.steps {
				got := m.Handle(s.ev)
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Fatalf("step %d (%T%+v): actions mismatch (-want +got):\n%s", i, s.ev, s.ev, diff)
				}
			}
			want := tt.status
			if want.Epochs == nil {
				want.Epochs = []EpochStatus{}
			}
			if diff := cmp.Diff(want, m.Status()); diff != "" {
				t.Errorf("status mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMachineNeverTwoEpochsInitializing feeds a storm of SIGHUPs and
// readiness reports in every interleaving the loop allows and checks that a
// new epoch is never spawned while another is still starting.
func TestMachineNeverTwoEpochsInitializing(t *testing.T) {
	p := safePolicy
	p.Check = false
	m := NewMachine(p)
	pid := 100
	starting := map[int]bool{} // epochs spawned and not ready yet
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
				feed(Spawned{Epoch: s.Epoch, PID: pid})
			}
		}
	}
	feed(Started{})
	for i := 0; i < 300; i++ {
		feed(Signaled{Signal: syscall.SIGHUP})
		if i%3 == 0 {
			for e := range starting {
				delete(starting, e)
				feed(Ready{Epoch: e})
			}
		}
	}
	if got := m.Status().Counters.Restarts; got < 50 || got > 101 {
		t.Fatalf("%d restarts for 300 SIGHUPs with a ready every 3rd; want them coalesced to about 100", got)
	}
}
