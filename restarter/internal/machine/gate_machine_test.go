package machine

import (
	"log/slog"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/status"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
)

// gatePolicy is the default configuration: the init gate on, no probe, no
// check, hot-restarter.py's exit policy.
var gatePolicy = Policy{
	TermWait: testTermWait, ReadyTimeout: 10 * time.Second, Notify: true, InitGate: true,
	Clock: func() time.Time { return testNow },
}

// keepPolicy adds --on-failed-restart keep.
var keepPolicy = func() Policy { p := gatePolicy; p.KeepOnFailedRestart = true; return p }()

func reloading(epoch int) Notify {
	return Notify{Reloading: true, Status: "hot restart to epoch " + itoa(epoch)}
}

// envoySpawned: epoch forked as pid after an Envoy epoch (it will set
// INITIALIZING): watched, and timed.
func envoySpawned(epoch, pid int) step {
	return step{Spawned{Epoch: epoch, PID: pid, Envoy: true}, do(WatchInit{Epoch: epoch, PID: pid}, readyTimeout)}
}

// envoyEpoch0: epoch 0 (pid 100) started; not yet known to be Envoy, so it
// is ready at once (as without the gate), then seen initializing, and done.
var envoyEpoch0 = []step{
	{Started{}, do(Spawn{Epoch: 0})},
	{Spawned{Epoch: 0, PID: 100}, do(WatchInit{Epoch: 0, PID: 100}, live(0, 100))},
	{InitStarted{Epoch: 0}, nil},
	{InitDone{Epoch: 0}, nil},
}

// envoyEpoch1Starting: a SIGHUP then forks epoch 1 (pid 101), known to be
// Envoy.
var envoyEpoch1Starting = then(envoyEpoch0,
	step{hup, do(reloading(1), Spawn{Epoch: 1})},
	envoySpawned(1, 101),
)

func TestMachineInitGateAndKeep(t *testing.T) {
	withProbe := keepPolicy
	withProbe.Readiness = true
	gateOff := keepPolicy
	gateOff.InitGate = false
	tests := []struct {
		name   string
		policy Policy
		steps  []step
		status status.Status
	}{
		{
			name:   "SIGTERM while the newest epoch initializes: it stops first, its parent once it is reaped",
			policy: gatePolicy,
			steps: then(envoyEpoch1Starting,
				step{term, do(Notify{Stopping: true, Status: "shutting down"}, stopReadyTimeout, sends(101, SIGTERM), holdOlder, termWait)},
				step{InitDone{Epoch: 1}, nil},
				step{Exited{PID: 101, Signal: SIGTERM}, do(stopOlder, sends(100, SIGTERM))}, // before its handlers
				step{Exited{PID: 100}, do(Exit{Code: 0})},
			),
			status: status.Status{Phase: "exited", Epochs: []status.EpochStatus{},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "shutdown in progress", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name:   "a child that never maps Envoy's region behaves as without the gate",
			policy: gatePolicy,
			steps: []step{
				{Started{}, do(Spawn{Epoch: 0})},
				{Spawned{Epoch: 0, PID: 100}, do(WatchInit{Epoch: 0, PID: 100}, live(0, 100))},
				{hup, do(reloading(1), Spawn{Epoch: 1})},
				{Spawned{Epoch: 1, PID: 101}, do(WatchInit{Epoch: 1, PID: 101}, live(1, 101))},
				{hup, do(reloading(2), Spawn{Epoch: 2})},
			},
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "draining"}, {Epoch: 1, PID: 101, Started: testNow, State: "live"}},
				Restart:     &status.RestartStatus{Epoch: 2, Stage: "starting"},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 2, Restarts: 2}},
		},
		{
			name:   "SIGHUPs and SIGUSR1 while epoch 0 initializes wait for its flag to clear",
			policy: gatePolicy,
			steps: then(envoyEpoch0[:3],
				step{hup, nil},
				step{hup, nil},
				step{usr1, nil},
				step{InitDone{Epoch: 0}, do(sends(100, SIGUSR1), reloading(1), Spawn{Epoch: 1})},
				step{InitStarted{Epoch: 0}, nil}, // done is done
				envoySpawned(1, 101),
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}, {Epoch: 1, PID: 101, Started: testNow, State: "starting"}},
				Restart:     &status.RestartStatus{Epoch: 1, Stage: "starting"},
				LastRestart: &status.RestartStatus{Epoch: 0, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 2, Restarts: 1}},
		},
		{
			name:   "SIGUSR1 right after epoch 0's fork, before the gate knows it is Envoy: held until its flag clears, sent once",
			policy: gatePolicy,
			steps: then(envoyEpoch0[:2],
				step{usr1, nil},
				step{InitStarted{Epoch: 0}, nil},
				step{usr1, nil},
				step{InitDone{Epoch: 0}, do(sends(100, SIGUSR1))},
				step{usr1, do(sends(100, SIGUSR1))},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 0, Result: "ok", At: testNow}},
		},
		{
			name:   "SIGUSR1 held for a child the gate then finds is not Envoy goes then",
			policy: gatePolicy,
			steps: then(envoyEpoch0[:2],
				step{usr1, nil},
				step{InitDone{Epoch: 0}, do(sends(100, SIGUSR1))},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 0, Result: "ok", At: testNow}},
		},
		{
			name:   "SIGUSR1 right after epoch 1's fork: epoch 0 gets it at once, epoch 1 once its flag clears",
			policy: gatePolicy,
			steps: then(envoyEpoch1Starting,
				step{usr1, do(sends(100, SIGUSR1))},
				step{InitStarted{Epoch: 1}, nil},
				step{InitDone{Epoch: 1}, do(sends(101, SIGUSR1), stopReadyTimeout, live(1, 101))},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "draining"}, {Epoch: 1, PID: 101, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Restarts: 1}},
		},
		{
			name: "with a readiness probe, SIGUSR1 held by the gate goes once the probe passes",
			policy: func() Policy {
				p := gatePolicy
				p.Readiness = true
				return p
			}(),
			steps: []step{
				{Started{}, do(Spawn{Epoch: 0})},
				{Spawned{Epoch: 0, PID: 100}, do(WatchInit{Epoch: 0, PID: 100}, WatchReady{Epoch: 0, PID: 100}, readyTimeout)},
				{usr1, nil},
				{Ready{Epoch: 0}, do(sends(100, SIGUSR1), stopReadyTimeout, live(0, 100))},
				{InitDone{Epoch: 0}, nil},
			},
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 0, Result: "ok", At: testNow}},
		},
		{
			name: "with a readiness probe, SIGUSR1 held by the gate goes once the flag clears, the probe still waiting",
			policy: func() Policy {
				p := gatePolicy
				p.Readiness = true
				return p
			}(),
			steps: []step{
				{Started{}, do(Spawn{Epoch: 0})},
				{Spawned{Epoch: 0, PID: 100}, do(WatchInit{Epoch: 0, PID: 100}, WatchReady{Epoch: 0, PID: 100}, readyTimeout)},
				{usr1, nil},
				{InitStarted{Epoch: 0}, nil},
				{InitDone{Epoch: 0}, do(sends(100, SIGUSR1))},
				{Ready{Epoch: 0}, do(stopReadyTimeout, live(0, 100))},
			},
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 0, Result: "ok", At: testNow}},
		},
		{
			name:   "a storm is coalesced: the next epoch forks the moment the flag clears",
			policy: gatePolicy,
			steps: then(envoyEpoch1Starting,
				step{hup, nil},
				step{ReloadRequested{Waiter: w1}, nil},
				step{hup, nil},
				step{InitStarted{Epoch: 1}, nil}, // known already
				step{InitDone{Epoch: 1}, do(stopReadyTimeout, live(1, 101), reloading(2), Spawn{Epoch: 2})},
				envoySpawned(2, 102),
				step{InitDone{Epoch: 2}, do(stopReadyTimeout, ReloadResult{Waiter: w1, OK: true, Epoch: 2}, live(2, 102))},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{
				{Epoch: 0, PID: 100, Started: testNow, State: "draining"}, {Epoch: 1, PID: 101, Started: testNow, State: "draining"}, {Epoch: 2, PID: 102, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 2, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 3, Reloads: 1, Restarts: 2}},
		},
		{
			name:   "an unknown region layout turns the gate off for that epoch",
			policy: gatePolicy,
			steps: then(envoyEpoch1Starting,
				step{InitDone{Epoch: 1, Warning: "region version 12, want 11"}, do(stopReadyTimeout, live(1, 101))},
				step{InitDone{Epoch: 1, Warning: "again"}, nil}, // one warning per epoch
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "draining"}, {Epoch: 1, PID: 101, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Restarts: 1}},
		},
		{
			name:   "exit policy: a new epoch that fails initializing takes everything down",
			policy: gatePolicy,
			steps: then(envoyEpoch1Starting,
				step{Exited{PID: 101, Code: 1}, do(stopReadyTimeout,
					// No READY=1 just before STOPPING=1.
					Notify{Stopping: true, Status: shuttingDown}, sends(100, SIGKILL), killWait)},
			),
			status: status.Status{Phase: "killing", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 exited with code=1 before it was ready", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name:   "exit policy: a new epoch that exits 0 initializing leaves the flag set; it is cleared, and the number reused",
			policy: gatePolicy,
			steps: then(envoyEpoch1Starting,
				step{hup, nil},
				step{Exited{PID: 101}, do(stopReadyTimeout,
					failed(1, "epoch 1 exited with code=0 before it was ready"),
					ClearInit{Epoch: 1, PID: 101}, reloading(1), Spawn{Epoch: 1})},
				step{InitCleared{Epoch: 1, PID: 101}, nil},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &status.RestartStatus{Epoch: 1, Stage: "starting"},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 exited with code=0 before it was ready", At: testNow},
				Counters:    status.Counters{SIGHUPs: 2, Restarts: 2, RestartsFailed: 1, InitFlagsCleared: 1}},
		},
		{
			name:   "keep: a new epoch that fails leaves the old one serving; the flag is healed and the number reused",
			policy: keepPolicy,
			steps: then(envoyEpoch1Starting,
				step{ReloadRequested{Waiter: w1}, nil},
				step{Exited{PID: 101, Code: 1}, do(stopReadyTimeout,
					failed(1, "epoch 1 exited with code=1 before it was ready"),
					ClearInit{Epoch: 1, PID: 101}, reloading(1), Spawn{Epoch: 1})},
				step{InitCleared{Epoch: 1, PID: 101}, nil},
				envoySpawned(1, 102),
				step{InitDone{Epoch: 1}, do(stopReadyTimeout, ReloadResult{Waiter: w1, OK: true, Epoch: 1}, live(1, 102))},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "draining"}, {Epoch: 1, PID: 102, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Reloads: 1, Restarts: 2, RestartsFailed: 1, InitFlagsCleared: 1}},
		},
		{
			name:   "keep: the reload of a restart whose epoch was killed gets the reason",
			policy: keepPolicy,
			steps: then(envoyEpoch0,
				step{ReloadRequested{Waiter: w1}, do(reloading(1), Spawn{Epoch: 1})},
				envoySpawned(1, 101),
				step{Exited{PID: 101, Signal: SIGKILL}, do(stopReadyTimeout,
					ReloadResult{Waiter: w1, Epoch: 1, Reason: "epoch 1 was killed with signal=9 before it was ready"},
					failed(1, "epoch 1 was killed with signal=9 before it was ready"),
					ClearInit{Epoch: 1, PID: 101})},
				step{hup, do(reloading(1), Spawn{Epoch: 1})},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &status.RestartStatus{Epoch: 1, Stage: "starting"},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 was killed with signal=9 before it was ready", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Reloads: 1, Restarts: 2, RestartsFailed: 1}},
		},
		{
			name:   "keep: an older epoch's late watcher never takes the new epoch's flag for its own; the dead new epoch's flag is healed",
			policy: keepPolicy,
			steps: then([]step{
				{Started{}, do(Spawn{Epoch: 0})},
				{Spawned{Epoch: 0, PID: 100}, do(WatchInit{Epoch: 0, PID: 100}, live(0, 100))},
				// epoch 0 set and cleared the flag before its watcher looked;
				// then a reload forks epoch 1, which sets it,
				{ReloadRequested{Waiter: w1}, do(reloading(1), Spawn{Epoch: 1})},
			},
				envoySpawned(1, 101),
				// and epoch 0's watcher, late, sees epoch 1's flag set: ignored,
				step{InitStarted{Epoch: 0}, nil},
				step{InitStarted{Epoch: 1}, nil},
				// so when epoch 1 dies, its flag is healed and epoch 0 serves on.
				step{Exited{PID: 101, Code: 1}, do(stopReadyTimeout,
					ReloadResult{Waiter: w1, Epoch: 1, Reason: "epoch 1 exited with code=1 before it was ready"},
					failed(1, "epoch 1 exited with code=1 before it was ready"),
					ClearInit{Epoch: 1, PID: 101})},
				step{hup, do(reloading(1), Spawn{Epoch: 1})},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &status.RestartStatus{Epoch: 1, Stage: "starting"},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 exited with code=1 before it was ready", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Reloads: 1, Restarts: 2, RestartsFailed: 1}},
		},
		{
			name:   "keep: a new epoch killed by SIGTERM, no stop signal following: kept after the group-stop grace",
			policy: keepPolicy,
			steps: then(envoyEpoch0,
				step{ReloadRequested{Waiter: w1}, do(reloading(1), Spawn{Epoch: 1})},
				envoySpawned(1, 101),
				step{Exited{PID: 101, Signal: SIGTERM}, do(stopReadyTimeout, groupGrace)},
				step{TimerFired{Timer: GroupStopTimer}, do(
					ReloadResult{Waiter: w1, Epoch: 1, Reason: "epoch 1 was killed with signal=15 before it was ready"},
					failed(1, "epoch 1 was killed with signal=15 before it was ready"),
					ClearInit{Epoch: 1, PID: 101})},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 was killed with signal=15 before it was ready", At: testNow},
				Counters:    status.Counters{Reloads: 1, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name:   "keep: an exec failure at epoch 1 keeps epoch 0",
			policy: keepPolicy,
			steps: then(envoyEpoch0,
				step{hup, do(reloading(1), Spawn{Epoch: 1})},
				step{SpawnFailed{Epoch: 1, Err: "cannot execute /x: too many open files (errno=24 EMFILE)"}, do(
					failed(1, "epoch could not be started: cannot execute /x: too many open files (errno=24 EMFILE)"))},
				step{hup, do(reloading(1), Spawn{Epoch: 1})},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				Restart:     &status.RestartStatus{Epoch: 1, Stage: "starting"},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch could not be started: cannot execute /x: too many open files (errno=24 EMFILE)", At: testNow},
				Counters:    status.Counters{SIGHUPs: 2, Restarts: 2, RestartsFailed: 1}},
		},
		{
			name:   "keep: epoch 0 failing to start still exits",
			policy: keepPolicy,
			steps: []step{
				{Started{}, do(Spawn{Epoch: 0})},
				{SpawnFailed{Epoch: 0, Err: "cannot execute /x: no such file"}, do(Notify{Stopping: true, Status: shuttingDown}, Exit{Code: 1})},
			},
			status: status.Status{Phase: "exited",
				LastRestart: &status.RestartStatus{Epoch: 0, Result: "failed", Reason: "epoch could not be started: cannot execute /x: no such file", At: testNow}},
		},
		{
			name:   "keep: an epoch never done initializing times out, is killed, and the old one keeps serving",
			policy: keepPolicy,
			steps: then(envoyEpoch1Starting,
				step{TimerFired{Timer: ReadyTimeoutTimer}, do(sends(101, SIGKILL))},
				step{Exited{PID: 101, Signal: SIGKILL}, do(
					failed(1, "epoch 1 not ready within --ready-timeout=10s: Envoy's INITIALIZING flag is still set"),
					ClearInit{Epoch: 1, PID: 101})},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 not ready within --ready-timeout=10s: Envoy's INITIALIZING flag is still set", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name:   "keep: a live epoch that dies still takes everything down",
			policy: keepPolicy,
			steps: then(envoyEpoch1Starting,
				step{InitDone{Epoch: 1}, do(stopReadyTimeout, live(1, 101))},
				step{Exited{PID: 101, Code: 1}, do(Notify{Stopping: true, Status: shuttingDown}, sends(100, SIGKILL), killWait)},
			),
			status: status.Status{Phase: "killing", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Restarts: 1}},
		},
		{
			// Its live child would abort within seconds anyway: Envoy's child
			// asks its parent for stats and aborts when the parent is gone.
			name:   "keep: a draining epoch that dies abnormally takes everything down",
			policy: keepPolicy,
			steps: then(envoyEpoch1Starting,
				step{InitDone{Epoch: 1}, do(stopReadyTimeout, live(1, 101))},
				step{Exited{PID: 100, Signal: SIGSEGV}, do(Notify{Stopping: true, Status: shuttingDown}, sends(101, SIGKILL), killWait)},
			),
			status: status.Status{Phase: "killing", Epochs: []status.EpochStatus{{Epoch: 1, PID: 101, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Restarts: 1}},
		},
		{
			name:   "with a probe: ready once both the flag cleared and the probe passed",
			policy: withProbe,
			steps: []step{
				{Started{}, do(Spawn{Epoch: 0})},
				{Spawned{Epoch: 0, PID: 100, Envoy: true}, do(WatchInit{Epoch: 0, PID: 100}, WatchReady{Epoch: 0, PID: 100}, readyTimeout)},
				{Ready{Epoch: 0}, nil},
				{InitDone{Epoch: 0}, do(stopReadyTimeout, live(0, 100))},
			},
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 0, Result: "ok", At: testNow}},
		},
		{
			name:   "with a probe: the timeout names the probe's last reason",
			policy: withProbe,
			steps: []step{
				{Started{}, do(Spawn{Epoch: 0})},
				{Spawned{Epoch: 0, PID: 100}, do(WatchInit{Epoch: 0, PID: 100}, WatchReady{Epoch: 0, PID: 100}, readyTimeout)},
				{Ready{Epoch: 0}, do(stopReadyTimeout, live(0, 100))},
				{hup, do(reloading(1), Spawn{Epoch: 1})},
				{Spawned{Epoch: 1, PID: 101}, do(WatchInit{Epoch: 1, PID: 101}, WatchReady{Epoch: 1, PID: 101}, readyTimeout)},
				{NotReady{Epoch: 1, Reason: "GET http://a/server_info: connection refused"}, nil},
				{NotReady{Epoch: 0, Reason: "stale"}, nil},
				{NotReady{Epoch: 1, Reason: "GET http://a/server_info: epoch 1 is INITIALIZING"}, nil},
				{TimerFired{Timer: ReadyTimeoutTimer}, do(StopWatch{Epoch: 1}, sends(101, SIGKILL))},
				{Exited{PID: 101, Signal: SIGKILL}, do(failed(1, "epoch 1 not ready within --ready-timeout=10s: GET http://a/server_info: epoch 1 is INITIALIZING"))},
			},
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: "epoch 1 not ready within --ready-timeout=10s: GET http://a/server_info: epoch 1 is INITIALIZING", At: testNow},
				Counters:    status.Counters{SIGHUPs: 1, Restarts: 1, RestartsFailed: 1}},
		},
		{
			name:   "gate off: no watching, no healing",
			policy: gateOff,
			steps: []step{
				{Started{}, do(Spawn{Epoch: 0})},
				{Spawned{Epoch: 0, PID: 100, Envoy: true}, do(live(0, 100))},
				{hup, do(reloading(1), Spawn{Epoch: 1})},
				{Spawned{Epoch: 1, PID: 101, Envoy: true}, do(live(1, 101))},
				{hup, do(reloading(2), Spawn{Epoch: 2})},
				{Spawned{Epoch: 2, PID: 102}, do(live(2, 102))},
				// Envoy's "previous envoy process is still initializing": the
				// epoch counted as live at once, so it takes the exit path.
				{Exited{PID: 102, Code: 1}, do(Notify{Stopping: true, Status: shuttingDown}, sends(100, SIGKILL), sends(101, SIGKILL), killWait)},
			},
			status: status.Status{Phase: "killing", Epochs: []status.EpochStatus{{Epoch: 0, PID: 100, Started: testNow, State: "draining"}, {Epoch: 1, PID: 101, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 2, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 2, Restarts: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { playToStatus(t, tt.policy, tt.steps, tt.status) })
	}
}

// TestGateMessages pins the operator-visible lines of the gate, the keep
// policy and the healing.
func TestGateMessages(t *testing.T) {
	m := New(keepPolicy)
	var logs []string
	for _, ev := range []Event{
		Started{}, Spawned{Epoch: 0, PID: 100}, InitStarted{Epoch: 0}, hup, InitDone{Epoch: 0},
		Spawned{Epoch: 1, PID: 101, Envoy: true}, hup,
		Exited{PID: 101, Code: 1}, InitCleared{Epoch: 1, PID: 101},
		Spawned{Epoch: 1, PID: 102, Envoy: true}, InitDone{Epoch: 1, Warning: "unknown layout"},
		hup, Spawned{Epoch: 2, PID: 103, Envoy: true}, TimerFired{Timer: ReadyTimeoutTimer},
	} {
		for _, a := range m.Handle(ev) {
			if l, ok := a.(Log); ok && l.Level >= slog.LevelInfo {
				logs = append(logs, l.Msg)
			}
		}
	}
	want := []string{
		"forking and execing new child process at epoch 0",
		"forked new child process with PID=100",
		"epoch 0 is initializing (Envoy's INITIALIZING flag is set)",
		"got SIGHUP",
		"epoch 0 is still initializing; SIGHUP queued for after it",
		"epoch 0 finished initializing",
		"epoch 0 is ready",
		"starting the queued hot restart",
		"forking and execing new child process at epoch 1",
		"forked new child process with PID=101",
		"got SIGHUP",
		"hot restart to epoch 1 in progress; SIGHUP queued for after it",
		"PID=101 exited with code=1",
		"keeping epoch 0 serving; the next hot restart tries epoch 1 again",
		"starting the queued hot restart",
		"forking and execing new child process at epoch 1",
		"cleared Envoy's INITIALIZING flag, left set by epoch 1 (PID=101) which died initializing (envoyproxy/envoy#33446)",
		"forked new child process with PID=102",
		"init gate off for epoch 1: unknown layout",
		"epoch 1 finished initializing",
		"epoch 1 is ready",
		"got SIGHUP",
		"forking and execing new child process at epoch 2",
		"forked new child process with PID=103",
		"epoch 2 not ready within --ready-timeout=10s: Envoy's INITIALIZING flag is still set; killing it",
	}
	if diff := cmp.Diff(want, logs); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}

// TestMachineGateNeverForksWhileInitializing: no epoch is forked while
// another holds (or is about to hold) Envoy's INITIALIZING flag.
func TestMachineGateNeverForksWhileInitializing(t *testing.T) {
	stormOneStartingAtATime(t, gatePolicy, true, func(epoch int) Event { return InitDone{Epoch: epoch} })
}

// envoyThreeEpochs: Envoy epochs 0 to 2 (pids 100 to 102), epoch 2 live;
// epoch 0, told to terminate when epoch 2 started, has not exited yet.
var envoyThreeEpochs = then(envoyEpoch1Starting,
	step{InitDone{Epoch: 1}, do(stopReadyTimeout, live(1, 101))},
	step{hup, do(reloading(2), Spawn{Epoch: 2})},
	envoySpawned(2, 102),
	step{InitDone{Epoch: 2}, do(stopReadyTimeout, live(2, 102))},
)

// Envoy names its domain sockets base_id*10 + epoch%3: epoch 3 would bind
// epoch 0's, and fail (errno=98) while epoch 0 is still exiting.
func TestMachineSocketSlotHold(t *testing.T) {
	w1, w2 := Waiter(201), Waiter(202)
	threeLive := []status.EpochStatus{
		{Epoch: 0, PID: 100, Started: testNow, State: "draining"},
		{Epoch: 1, PID: 101, Started: testNow, State: "draining"},
		{Epoch: 2, PID: 102, Started: testNow, State: "live"}}
	tests := []struct {
		name   string
		steps  []step
		status status.Status
	}{
		{
			name: "a SIGHUP while epoch N-3 is exiting is held, coalesced, and starts when it is reaped",
			steps: then(envoyThreeEpochs,
				step{hup, nil},
				step{ReloadRequested{Waiter: w1}, nil},
				step{hup, nil},
				step{Exited{PID: 101}, nil}, // not the one holding epoch 3's sockets
				step{Exited{PID: 100}, do(reloading(3), Spawn{Epoch: 3})},
				envoySpawned(3, 103),
				step{InitDone{Epoch: 3}, do(stopReadyTimeout, ReloadResult{Waiter: w1, OK: true, Epoch: 3}, live(3, 103))},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{
				{Epoch: 2, PID: 102, Started: testNow, State: "draining"}, {Epoch: 3, PID: 103, Started: testNow, State: "live"}},
				LastRestart: &status.RestartStatus{Epoch: 3, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 4, Reloads: 1, Restarts: 3, SlotHolds: 1}},
		},
		{
			name: "a restart queued behind an initializing epoch is then held by epoch N-3",
			steps: then(envoyEpoch1Starting,
				step{InitDone{Epoch: 1}, do(stopReadyTimeout, live(1, 101))},
				step{hup, do(reloading(2), Spawn{Epoch: 2})},
				envoySpawned(2, 102),
				step{hup, nil}, // queued behind epoch 2's initialization
				step{InitDone{Epoch: 2}, do(stopReadyTimeout, live(2, 102))}, // then held by epoch 0
				step{hup, nil},
				step{Exited{PID: 100}, do(reloading(3), Spawn{Epoch: 3})},
			),
			status: status.Status{Phase: "running", Epochs: []status.EpochStatus{
				{Epoch: 1, PID: 101, Started: testNow, State: "draining"}, {Epoch: 2, PID: 102, Started: testNow, State: "live"}},
				Restart:     &status.RestartStatus{Epoch: 3, Stage: "starting"},
				LastRestart: &status.RestartStatus{Epoch: 2, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 4, Restarts: 3, SlotHolds: 1}},
		},
		{
			name: "SIGTERM during a hold answers the held reload; the reaped epoch starts nothing",
			steps: then(envoyThreeEpochs,
				step{ReloadRequested{Waiter: w2}, nil},
				step{term, do(Notify{Stopping: true, Status: "shutting down"}, ReloadResult{Waiter: w2, Reason: "shutdown in progress"},
					sends(102, SIGTERM), holdOlder, termWait)},
				step{Exited{PID: 100}, nil},
			),
			status: status.Status{Phase: "terminating", Epochs: threeLive[1:],
				LastRestart: &status.RestartStatus{Epoch: 2, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 2, Reloads: 1, Restarts: 2, SlotHolds: 1}},
		},
		{
			name: "no hold once epoch N-3 is gone",
			steps: then(envoyThreeEpochs,
				step{Exited{PID: 100}, nil},
				step{hup, do(reloading(3), Spawn{Epoch: 3})},
			),
			status: status.Status{Phase: "running", Epochs: threeLive[1:],
				Restart:     &status.RestartStatus{Epoch: 3, Stage: "starting"},
				LastRestart: &status.RestartStatus{Epoch: 2, Result: "ok", At: testNow},
				Counters:    status.Counters{SIGHUPs: 3, Restarts: 3}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { playToStatus(t, gatePolicy, tt.steps, tt.status) })
	}
}

// An epoch 0 that set and cleared INITIALIZING between two of the
// watcher's looks is reported done (InitDone, Envoy) without InitStarted:
// it is ready all the same, said once; with a probe, the probe says so.
func TestMachineEpochDoneBeforeItWasSeenInitializing(t *testing.T) {
	readyLines := func(acts []Action) (n int) {
		for _, a := range acts {
			if l, ok := a.(Log); ok && l.Msg == "epoch 0 is ready" {
				n++
			}
		}
		return n
	}
	withProbe := gatePolicy
	withProbe.Readiness = true
	for _, tc := range []struct {
		name   string
		policy Policy
		want   int
	}{
		{"no probe", gatePolicy, 1},
		{"probe", withProbe, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(tc.policy)
			m.Handle(Started{})
			m.Handle(Spawned{Epoch: 0, PID: 100})
			if n := readyLines(m.Handle(InitDone{Epoch: 0, Envoy: true})); n != tc.want {
				t.Fatalf("InitDone: %d 'epoch 0 is ready' lines, want %d", n, tc.want)
			}
			if n := readyLines(m.Handle(InitDone{Epoch: 0, Envoy: true})); n != 0 {
				t.Fatalf("a second InitDone: %d 'epoch 0 is ready' lines, want 0", n)
			}
			if !m.envoy {
				t.Fatal("the children are not taken for Envoy")
			}
		})
	}
}

func TestMachineUntoldIsTheNewestEpochNotYetSeenByItsWatcher(t *testing.T) {
	m := New(gatePolicy)
	_, _, ok := m.Untold()
	require.False(t, ok, "no epoch")
	m.Handle(Started{})
	m.Handle(Spawned{Epoch: 0, PID: 100})
	epoch, pid, ok := m.Untold()
	require.True(t, ok, "forked, its flag not seen yet")
	require.Equal(t, [2]int{0, 100}, [2]int{epoch, pid})
	m.Handle(InitStarted{Epoch: 0})
	_, _, ok = m.Untold()
	require.False(t, ok, "seen initializing")
	m.Handle(InitDone{Epoch: 0, Envoy: true})
	_, _, ok = m.Untold()
	require.False(t, ok, "seen done")
}
