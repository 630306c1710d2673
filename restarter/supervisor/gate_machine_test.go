package supervisor

import (
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// gatePolicy is the default configuration: the init gate on, no probe,
// no check, hot-restarter.py's exit policy.
var gatePolicy = Policy{
	TermWait: testTermWait, ReadyTimeout: 10 * time.Second, Notify: true, InitGate: true,
	Clock: func() time.Time { return testNow },
}

// keepPolicy adds --on-failed-restart keep.
var keepPolicy = func() Policy { p := gatePolicy; p.KeepOnFailedRestart = true; return p }()

// forkedEnvoy: epoch forked as pid, known to be Envoy (it will set
// INITIALIZING), so it is watched and timed.
func forkedEnvoy(epoch, pid int) step {
	return step{Spawned{Epoch: epoch, PID: pid, Envoy: true}, []Action{
		say("forked new child process with PID="+itoa(pid), "pid", pid, "epoch", epoch),
		WatchInit{Epoch: epoch, PID: pid},
		SetTimer{Timer: ReadyTimeoutTimer, After: 10 * time.Second},
	}}
}

func reloading(epoch int) Action {
	return Notify{Reloading: true, Status: "hot restart to epoch " + itoa(epoch)}
}

func initDoneLive(epoch, pid int) []Action {
	return []Action{
		say("epoch "+itoa(epoch)+" finished initializing", "epoch", epoch, "pid", pid),
		say("epoch "+itoa(epoch)+" is ready", "epoch", epoch, "pid", pid),
		Notify{Ready: true, Status: "epoch " + itoa(epoch) + " live (PID=" + itoa(pid) + ")"},
	}
}

func stillInitializing(epoch int, what string) Action {
	return say("epoch "+itoa(epoch)+" is still initializing; "+what+" queued for after it", "epoch", epoch)
}

func kept(live, epoch int) Action {
	return warn("keeping epoch "+itoa(live)+" serving; the next hot restart tries epoch "+itoa(epoch)+" again", "epoch", epoch)
}

func failedNotify(epoch int, reason string) Action {
	return Notify{Ready: true, Status: "hot restart to epoch " + itoa(epoch) + " failed: " + reason}
}

// envoyEpoch0: epoch 0 (pid 100) started; not yet known to be Envoy, so it
// is ready at once (as without the gate), then seen initializing and done.
var envoyEpoch0 = []step{
	{Started{}, forking(0)},
	{Spawned{Epoch: 0, PID: 100}, []Action{
		say("forked new child process with PID=100", "pid", 100, "epoch", 0),
		WatchInit{Epoch: 0, PID: 100},
		Notify{Ready: true, Status: "epoch 0 live (PID=100)"},
	}},
	{InitStarted{Epoch: 0}, []Action{say("epoch 0 is initializing (Envoy's INITIALIZING flag is set)", "epoch", 0)}},
	{InitDone{Epoch: 0}, initDoneLive(0, 100)[:2]},
}

// envoyEpoch1Starting: on top of envoyEpoch0, a SIGHUP forks epoch 1
// (pid 101), known to be Envoy.
var envoyEpoch1Starting = append(append([]step{}, envoyEpoch0...),
	step{Signaled{Signal: syscall.SIGHUP}, cat(say("got SIGHUP"), reloading(1), forking(1))},
	forkedEnvoy(1, 101),
)

func TestMachineInitGateAndKeep(t *testing.T) {
	hup := Signaled{Signal: syscall.SIGHUP}
	tests := []struct {
		name   string
		policy Policy
		steps  []step
		status Status
	}{
		{
			name:   "a child that never maps Envoy's region behaves as without the gate",
			policy: gatePolicy,
			steps: []step{
				{Started{}, forking(0)},
				{Spawned{Epoch: 0, PID: 100}, cat(say("forked new child process with PID=100", "pid", 100, "epoch", 0), WatchInit{Epoch: 0, PID: 100},
					Notify{Ready: true, Status: "epoch 0 live (PID=100)"})},
				{hup, cat(say("got SIGHUP"), reloading(1), forking(1))},
				{Spawned{Epoch: 1, PID: 101}, cat(say("forked new child process with PID=101", "pid", 101, "epoch", 1), WatchInit{Epoch: 1, PID: 101},
					Notify{Ready: true, Status: "epoch 1 live (PID=101)"})},
				{hup, cat(say("got SIGHUP"), reloading(2), forking(2))},
			},
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "draining"}, {Epoch: 1, PID: 101, Started: testNow, State: "live"}},
				Restart:     &RestartStatus{Epoch: 2, Stage: "starting"},
				LastRestart: &RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    Counters{SIGHUPs: 2, Restarts: 2}},
		},
		{
			name:   "SIGHUPs while epoch 0 initializes wait for its flag to clear",
			policy: gatePolicy,
			steps: append(append([]step{}, envoyEpoch0[:3]...),
				step{hup, cat(say("got SIGHUP"), stillInitializing(0, "SIGHUP"))},
				step{hup, cat(say("got SIGHUP"), stillInitializing(0, "SIGHUP"))},
				step{Signaled{Signal: syscall.SIGUSR1}, cat(say("got SIGUSR1"), say("deferring SIGUSR1 to PID=100 until epoch 0 is ready", "pid", 100, "epoch", 0))},
				step{InitDone{Epoch: 0}, cat(initDoneLive(0, 100)[:2], sending("SIGUSR1", syscall.SIGUSR1, 100, 0),
					say("starting the queued hot restart"), reloading(1), forking(1))},
				step{InitStarted{Epoch: 0}, nil}, // done is done
				forkedEnvoy(1, 101),
			),
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}, {Epoch: 1, PID: 101, Started: testNow, State: "starting"}},
				Restart:     &RestartStatus{Epoch: 1, Stage: "starting"},
				LastRestart: &RestartStatus{Epoch: 0, Result: "ok", At: testNow},
				Counters:    Counters{SIGHUPs: 2, Restarts: 1}},
		},
		{
			name:   "a storm is coalesced: the next epoch forks the moment the flag clears",
			policy: gatePolicy,
			steps: append(append([]step{}, envoyEpoch1Starting...),
				step{hup, cat(say("got SIGHUP"), queued(1, "SIGHUP"))},
				step{ReloadRequested{ID: 1}, cat(queued(1, "reload request"))},
				step{hup, cat(say("got SIGHUP"), queued(1, "SIGHUP"))},
				step{InitStarted{Epoch: 1}, nil}, // known already
				step{InitDone{Epoch: 1}, cat(initDoneLive(1, 101), say("starting the queued hot restart"), reloading(2), forking(2))},
				forkedEnvoy(2, 102),
				step{InitDone{Epoch: 2}, cat(initDoneLive(2, 102)[:2], ReloadResult{ID: 1, OK: true, Epoch: 2}, initDoneLive(2, 102)[2])},
			),
			status: Status{Phase: "running", Epochs: []EpochStatus{
				{Epoch: 0, PID: 100, Started: testNow, State: "draining"}, {Epoch: 1, PID: 101, Started: testNow, State: "draining"}, {Epoch: 2, PID: 102, Started: testNow, State: "live"}},
				LastRestart: &RestartStatus{Epoch: 2, Result: "ok", At: testNow},
				Counters:    Counters{SIGHUPs: 3, Reloads: 1, Restarts: 2}},
		},
		{
			name:   "an unknown region layout turns the gate off for that epoch, with a warning",
			policy: gatePolicy,
			steps: append(append([]step{}, envoyEpoch1Starting...),
				step{InitDone{Epoch: 1, Warning: "region version 12, want 11"}, cat(
					warn("init gate off for epoch 1: region version 12, want 11", "epoch", 1), initDoneLive(1, 101))},
				step{InitDone{Epoch: 1, Warning: "again"}, nil}, // one warning per epoch
			),
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "draining"}, {Epoch: 1, PID: 101, Started: testNow, State: "live"}},
				LastRestart: &RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    Counters{SIGHUPs: 1, Restarts: 1}},
		},
		{
			name:   "exit policy: a new epoch that fails initializing takes everything down",
			policy: gatePolicy,
			steps: append(append([]step{}, envoyEpoch1Starting...),
				step{Exited{PID: 101, Code: 1}, cat(exitedCode(101, 1, 1),
					failedNotify(1, "epoch 1 exited with code=1 before it was ready"),
					warn(abnormal), Notify{Stopping: true, Status: "shutting down: " + abnormal},
					forceKill(100, 0), SetTimer{Timer: KillWaitTimer, After: KillWait})},
			),
			status: Status{Phase: "killing", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 exited with code=1 before it was ready", At: testNow},
				Counters:    Counters{SIGHUPs: 1, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name:   "exit policy: a new epoch that exits 0 initializing leaves the flag set; it is cleared",
			policy: gatePolicy,
			steps: append(append([]step{}, envoyEpoch1Starting...),
				step{hup, cat(say("got SIGHUP"), queued(1, "SIGHUP"))},
				step{Exited{PID: 101}, cat(exitedOK(101, 1),
					failedNotify(1, "epoch 1 exited with code=0 before it was ready"),
					ClearInit{Epoch: 1, PID: 101},
					say("starting the queued hot restart"), reloading(2), forking(2))},
				step{InitCleared{Epoch: 1, PID: 101}, cat(warn("cleared Envoy's INITIALIZING flag, left set by epoch 1 (PID=101) which died initializing (envoyproxy/envoy#33446)", "epoch", 1, "pid", 101))},
			),
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &RestartStatus{Epoch: 2, Stage: "starting"},
				LastRestart: &RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 exited with code=0 before it was ready", At: testNow},
				Counters:    Counters{SIGHUPs: 2, Restarts: 2, RestartsFailed: 1, InitFlagsCleared: 1}},
		},
		{
			name:   "keep: a new epoch that fails leaves the old one serving; the flag is healed and the number reused",
			policy: keepPolicy,
			steps: append(append([]step{}, envoyEpoch1Starting...),
				step{ReloadRequested{ID: 7}, cat(queued(1, "reload request"))},
				step{Exited{PID: 101, Code: 1}, cat(exitedCode(101, 1, 1),
					failedNotify(1, "epoch 1 exited with code=1 before it was ready"),
					ClearInit{Epoch: 1, PID: 101},
					kept(0, 1),
					say("starting the queued hot restart"), reloading(1), forking(1))},
				step{InitCleared{Epoch: 1, PID: 101}, cat(warn("cleared Envoy's INITIALIZING flag, left set by epoch 1 (PID=101) which died initializing (envoyproxy/envoy#33446)", "epoch", 1, "pid", 101))},
				forkedEnvoy(1, 102),
				step{InitDone{Epoch: 1}, cat(initDoneLive(1, 102)[:2], ReloadResult{ID: 7, OK: true, Epoch: 1}, initDoneLive(1, 102)[2])},
			),
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "draining"}, {Epoch: 1, PID: 102, Started: testNow, State: "live"}},
				LastRestart: &RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    Counters{SIGHUPs: 1, Reloads: 1, Restarts: 2, RestartsFailed: 1, InitFlagsCleared: 1}},
		},
		{
			name:   "keep: a reload of a restart that fails exits 1 with the reason",
			policy: keepPolicy,
			steps: append(append([]step{}, envoyEpoch0...),
				step{ReloadRequested{ID: 1}, cat(reloading(1), forking(1))},
				forkedEnvoy(1, 101),
				step{Exited{PID: 101, Signal: syscall.SIGKILL}, cat(killedBy(101, 1, syscall.SIGKILL),
					ReloadResult{ID: 1, Epoch: 1, Reason: "epoch 1 was killed with signal=9 before it was ready"},
					failedNotify(1, "epoch 1 was killed with signal=9 before it was ready"),
					ClearInit{Epoch: 1, PID: 101}, kept(0, 1))},
				step{hup, cat(say("got SIGHUP"), reloading(1), forking(1))},
			),
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &RestartStatus{Epoch: 1, Stage: "starting"},
				LastRestart: &RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 was killed with signal=9 before it was ready", At: testNow},
				Counters:    Counters{SIGHUPs: 1, Reloads: 1, Restarts: 2, RestartsFailed: 1}},
		},
		{
			name:   "keep: an exec failure at epoch 1 keeps epoch 0",
			policy: keepPolicy,
			steps: append(append([]step{}, envoyEpoch0...),
				step{hup, cat(say("got SIGHUP"), reloading(1), forking(1))},
				step{SpawnFailed{Epoch: 1, Err: "cannot execute /x: too many open files (errno=24 EMFILE)"}, cat(
					Log{Level: slog.LevelError, Msg: "epoch 1: cannot execute /x: too many open files (errno=24 EMFILE)"},
					failedNotify(1, "epoch could not be started: cannot execute /x: too many open files (errno=24 EMFILE)"),
					kept(0, 1))},
				step{hup, cat(say("got SIGHUP"), reloading(1), forking(1))},
			),
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &RestartStatus{Epoch: 1, Stage: "starting"},
				LastRestart: &RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch could not be started: cannot execute /x: too many open files (errno=24 EMFILE)", At: testNow},
				Counters:    Counters{SIGHUPs: 2, Restarts: 2, RestartsFailed: 1}},
		},
		{
			name:   "keep: epoch 0 failing to start still exits",
			policy: keepPolicy,
			steps: []step{
				{Started{}, forking(0)},
				{SpawnFailed{Epoch: 0, Err: "cannot execute /x: no such file"}, cat(
					Log{Level: slog.LevelError, Msg: "epoch 0: cannot execute /x: no such file"},
					warn(abnormal), Notify{Stopping: true, Status: "shutting down: " + abnormal}, exitWith(1))},
			},
			status: Status{Phase: "exited",
				LastRestart: &RestartStatus{Epoch: 0, Result: "failed", Reason: "epoch could not be started: cannot execute /x: no such file", At: testNow}},
		},
		{
			name:   "keep: an epoch never done initializing times out, is killed, and the old one keeps serving",
			policy: keepPolicy,
			steps: append(append([]step{}, envoyEpoch1Starting...),
				step{TimerFired{Timer: ReadyTimeoutTimer}, cat(
					Log{Level: slog.LevelError, Msg: "epoch 1 not ready within --ready-timeout=10s: Envoy's INITIALIZING flag is still set; killing it", Args: []any{"epoch", 1, "pid", 101}},
					Kill{PID: 101, Signal: syscall.SIGKILL})},
				step{Exited{PID: 101, Signal: syscall.SIGKILL}, cat(killedBy(101, 1, syscall.SIGKILL),
					failedNotify(1, "epoch 1 not ready within --ready-timeout=10s: Envoy's INITIALIZING flag is still set"),
					ClearInit{Epoch: 1, PID: 101}, kept(0, 1))},
			),
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 not ready within --ready-timeout=10s: Envoy's INITIALIZING flag is still set", At: testNow},
				Counters:    Counters{SIGHUPs: 1, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name:   "keep: a live epoch that dies still takes everything down",
			policy: keepPolicy,
			steps: append(append([]step{}, envoyEpoch1Starting...),
				step{InitDone{Epoch: 1}, initDoneLive(1, 101)},
				step{Exited{PID: 101, Code: 1}, cat(exitedCode(101, 1, 1),
					warn(abnormal), Notify{Stopping: true, Status: "shutting down: " + abnormal},
					forceKill(100, 0), SetTimer{Timer: KillWaitTimer, After: KillWait})},
			),
			status: Status{Phase: "killing", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    Counters{SIGHUPs: 1, Restarts: 1}},
		},
		{
			// Its live child would abort within seconds anyway: Envoy's child
			// asks its parent for stats and aborts when the parent is gone.
			name:   "keep: a draining epoch that dies abnormally takes everything down",
			policy: keepPolicy,
			steps: append(append([]step{}, envoyEpoch1Starting...),
				step{InitDone{Epoch: 1}, initDoneLive(1, 101)},
				step{Exited{PID: 100, Signal: syscall.SIGSEGV}, cat(killedBy(100, 0, syscall.SIGSEGV),
					warn(abnormal), Notify{Stopping: true, Status: "shutting down: " + abnormal},
					forceKill(101, 1), SetTimer{Timer: KillWaitTimer, After: KillWait})},
			),
			status: Status{Phase: "killing", Epochs: []EpochStatus{{Epoch: 1, PID: 101, Started: testNow, State: "live"}},
				LastRestart: &RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    Counters{SIGHUPs: 1, Restarts: 1}},
		},
		{
			name:   "keep with a probe: the epoch is ready when both the flag cleared and the probe passed",
			policy: func() Policy { p := keepPolicy; p.Readiness = true; return p }(),
			steps: []step{
				{Started{}, forking(0)},
				{Spawned{Epoch: 0, PID: 100, Envoy: true}, cat(say("forked new child process with PID=100", "pid", 100, "epoch", 0),
					WatchInit{Epoch: 0, PID: 100}, WatchReady{Epoch: 0, PID: 100}, SetTimer{Timer: ReadyTimeoutTimer, After: 10 * time.Second})},
				{Ready{Epoch: 0}, nil},
				{InitDone{Epoch: 0}, cat(initDoneLive(0, 100))},
			},
			status: Status{Phase: "running", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &RestartStatus{Epoch: 0, Result: "ok", At: testNow}},
		},
		{
			name:   "gate off: no watching, no healing",
			policy: func() Policy { p := keepPolicy; p.InitGate = false; return p }(),
			steps: []step{
				{Started{}, forking(0)},
				{Spawned{Epoch: 0, PID: 100, Envoy: true}, cat(say("forked new child process with PID=100", "pid", 100, "epoch", 0), Notify{Ready: true, Status: "epoch 0 live (PID=100)"})},
				{hup, cat(say("got SIGHUP"), reloading(1), forking(1))},
				{Spawned{Epoch: 1, PID: 101, Envoy: true}, cat(say("forked new child process with PID=101", "pid", 101, "epoch", 1), Notify{Ready: true, Status: "epoch 1 live (PID=101)"})},
				{hup, cat(say("got SIGHUP"), reloading(2), forking(2))},
				{Spawned{Epoch: 2, PID: 102}, cat(say("forked new child process with PID=102", "pid", 102, "epoch", 2), Notify{Ready: true, Status: "epoch 2 live (PID=102)"})},
				// Envoy's "previous envoy process is still initializing": once
				// live, a failure is a live epoch's and takes the exit path.
				{Exited{PID: 102, Code: 1}, cat(exitedCode(102, 2, 1), warn(abnormal), Notify{Stopping: true, Status: "shutting down: " + abnormal},
					forceKill(100, 0), forceKill(101, 1), SetTimer{Timer: KillWaitTimer, After: KillWait})},
			},
			status: Status{Phase: "killing", Epochs: []EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "draining"}, {Epoch: 1, PID: 101, Started: testNow, State: "live"}},
				LastRestart: &RestartStatus{Epoch: 2, Result: "ok", At: testNow},
				Counters:    Counters{SIGHUPs: 2, Restarts: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMachine(tt.policy)
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

// TestMachineGateNeverForksWhileInitializing feeds a storm of SIGHUPs and
// flag reports and checks that no epoch is forked while another holds (or
// is about to hold) Envoy's INITIALIZING flag.
func TestMachineGateNeverForksWhileInitializing(t *testing.T) {
	m := NewMachine(gatePolicy)
	pid := 100
	initializing := map[int]bool{}
	var feed func(ev Event)
	feed = func(ev Event) {
		t.Helper()
		for _, a := range m.Handle(ev) {
			if s, ok := a.(Spawn); ok {
				if len(initializing) > 0 {
					t.Fatalf("epoch %d forked while %v initializing", s.Epoch, initializing)
				}
				initializing[s.Epoch] = true
				pid++
				feed(Spawned{Epoch: s.Epoch, PID: pid, Envoy: true})
			}
		}
	}
	feed(Started{})
	for i := 0; i < 300; i++ {
		feed(Signaled{Signal: syscall.SIGHUP})
		if i%3 == 0 {
			for e := range initializing {
				delete(initializing, e)
				feed(InitDone{Epoch: e})
			}
		}
	}
	if got := m.Status().Counters.Restarts; got < 50 || got > 101 {
		t.Fatalf("%d restarts for 300 SIGHUPs with a flag clearing every 3rd; want them coalesced to about 100", got)
	}
}
