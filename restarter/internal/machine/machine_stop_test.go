package machine

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	quit       = Signaled{Signal: SIGQUIT}
	groupGrace = SetTimer{Timer: GroupStopTimer, After: GroupStopGrace}
)

// TestMachineStopSignals covers the stop signals as an operator's world sends
// them: to the whole process group, twice, SIGQUIT, and signals the
// restarter has no use for.
func TestMachineStopSignals(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		pids  []int
		logs  []string // messages that must have been logged, in order
	}{
		{
			name: "group SIGTERM: the epoch's death reaped before the restarter's own signal is part of the stop",
			steps: then(twoEpochs,
				step{Exited{PID: 101, Signal: SIGTERM}, do(groupGrace)},
				step{term, do(sends(100, SIGTERM), termWait)},
				step{TimerFired{Timer: GroupStopTimer}, nil}, // the signal gave the verdict
				step{Exited{PID: 100}, do(Exit{Code: 0})},
			),
			logs: []string{
				"PID=101 was killed with signal=15",
				"PID=101 was killed by SIGTERM, perhaps sent to the whole process group: waiting up to 1s for the restarter's own before calling it abnormal",
				"got SIGTERM",
				"PID=101 was stopped by the same signal: part of the shutdown",
				"all children exited cleanly",
			},
		},
		{
			name: "group SIGINT: every epoch dead before the restarter's own signal, exit 0",
			steps: then(twoEpochs,
				step{Exited{PID: 101, Signal: SIGINT}, do(groupGrace)},
				step{Exited{PID: 100}, nil}, // no "lack of child processes" exit while a verdict is held
				step{intr, do(Exit{Code: 0})},
			),
		},
		{
			name: "group SIGTERM: the restarter's own signal first",
			steps: then(twoEpochs,
				step{term, do(sends(101, SIGTERM), holdOlder, termWait)},
				step{Exited{PID: 101, Signal: SIGTERM}, do(stopOlder, sends(100, SIGTERM))},
				step{Exited{PID: 100}, do(Exit{Code: 0})},
			),
		},
		{
			name: "an epoch killed by SIGTERM with no stop signal for the restarter is abnormal after the grace",
			steps: then(twoEpochs,
				step{Exited{PID: 101, Signal: SIGTERM}, do(groupGrace)},
				step{TimerFired{Timer: GroupStopTimer}, do(sends(100, SIGKILL), killWait)},
				step{term, nil},
				step{Exited{PID: 100, Signal: SIGKILL}, do(Exit{Code: 1})},
			),
			logs: []string{"Due to abnormal exit, force killing all child processes and exiting", "ignoring SIGTERM: shutdown in progress"},
		},
		{
			name: "another abnormal exit while a verdict is held aborts at once",
			steps: then(twoEpochs,
				step{Exited{PID: 101, Signal: SIGQUIT}, do(groupGrace)},
				step{Exited{PID: 100, Code: 3}, do(Exit{Code: 1})},
			),
		},
		{
			name: "a second stop signal during shutdown force kills at once",
			steps: then(twoEpochs,
				step{term, do(sends(101, SIGTERM), holdOlder, termWait)},
				step{intr, do(stopOlder, sends(100, SIGKILL), sends(101, SIGKILL), killWait)},
				step{Exited{PID: 100, Signal: SIGKILL}, nil},
				step{Exited{PID: 101, Signal: SIGKILL}, do(Exit{Code: 1})},
			),
			logs: []string{"SIGINT during shutdown: force killing all child processes"},
		},
		{
			name: "SIGQUIT stops like SIGTERM",
			steps: then(twoEpochs,
				step{quit, do(sends(101, SIGTERM), holdOlder, termWait)},
				step{Exited{PID: 100}, nil},
				step{Exited{PID: 101}, do(Exit{Code: 0})},
			),
		},
		{
			name: "an epoch that crashes during the stop makes the exit code 1, and the stop goes on",
			steps: then(twoEpochs,
				step{term, do(sends(101, SIGTERM), holdOlder, termWait)},
				step{Exited{PID: 101, Signal: SIGSEGV}, do(stopOlder, sends(100, SIGTERM))},
				step{Exited{PID: 100}, do(Exit{Code: 1})},
			),
			logs: []string{
				"PID=101 was killed with signal=11",
				"epoch 1 (PID=101) was killed with signal=11 during the stop: the exit code will be 1",
				"all children exited; epoch 1 (PID=101) was killed with signal=11 during the stop",
				"exiting with code=1",
			},
		},
		{
			name: "an older epoch that aborts while the newest drains makes the exit code 1",
			steps: then(threeEpochs,
				step{term, do(sends(102, SIGTERM), holdOlder, termWait)},
				step{Exited{PID: 100, Signal: SIGABRT}, nil},
				step{Exited{PID: 102}, do(stopOlder, sends(101, SIGTERM))},
				step{Exited{PID: 101, Code: 1}, do(Exit{Code: 1})},
			),
			logs: []string{
				"epoch 0 (PID=100) was killed with signal=6 during the stop: the exit code will be 1",
				"epoch 1 (PID=101) exited with code=1 during the stop: the exit code will be 1",
				"all children exited; epoch 0 (PID=100) was killed with signal=6 during the stop; epoch 1 (PID=101) exited with code=1 during the stop",
			},
		},
		{
			name: "epochs killed by stop signals during the stop are part of it: exit 0",
			steps: then(twoEpochs,
				step{term, do(sends(101, SIGTERM), holdOlder, termWait)},
				step{Exited{PID: 101, Signal: SIGTERM}, do(stopOlder, sends(100, SIGTERM))},
				step{Exited{PID: 100, Signal: SIGINT}, do(Exit{Code: 0})},
			),
			logs: []string{"all children exited cleanly", "exiting with code=0"},
		},
		{
			name: "signals of no use are ignored and logged once each",
			steps: then(twoEpochs,
				step{Signaled{Signal: SIGUSR2}, nil},
				step{Signaled{Signal: SIGPIPE}, nil},
				step{Signaled{Signal: SIGUSR2}, nil},
				step{Signaled{Signal: SIGPIPE}, nil},
			),
			pids: []int{100, 101},
			logs: []string{"ignoring SIGUSR2 (logged once)", "ignoring SIGPIPE (logged once)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Policy{TermWait: testTermWait})
			var logged []string
			for _, s := range tt.steps {
				for _, a := range m.Handle(s.ev) {
					if l, ok := a.(Log); ok {
						logged = append(logged, l.Msg)
					}
				}
			}
			// Replay for the action comparison, which leaves logs out.
			play(t, New(Policy{TermWait: testTermWait}), tt.steps)
			if diff := cmp.Diff(tt.pids, m.PIDs(), cmpEmpty); diff != "" {
				t.Errorf("live children mismatch (-want +got):\n%s", diff)
			}
			i := 0
			for _, msg := range logged {
				if i < len(tt.logs) && msg == tt.logs[i] {
					i++
				}
			}
			if i < len(tt.logs) {
				t.Errorf("log %q missing or out of order in:\n%q", tt.logs[i], logged)
			}
			if n := len(slices.DeleteFunc(logged, func(s string) bool { return s != "ignoring SIGUSR2 (logged once)" })); n > 1 {
				t.Errorf("SIGUSR2 logged %d times", n)
			}
		})
	}
}

// TestMachineNeverReadyBeforeStopping checks that a failed hot restart that
// takes everything down tells the service manager STOPPING=1 without a
// READY=1 just before it, whichever way the restart failed, and still
// records why it failed.
func TestMachineNeverReadyBeforeStopping(t *testing.T) {
	for name, tt := range map[string]struct {
		ev     Event
		reason string
	}{
		"spawn failed":       {SpawnFailed{Epoch: 1, Err: "cannot execute /x: no such file or directory (errno=2 ENOENT)"}, "epoch could not be started: cannot execute /x: no such file or directory (errno=2 ENOENT)"},
		"epoch died":         {Exited{PID: 101, Code: 1}, "epoch 1 exited with code=1 before it was ready"},
		"epoch killed, held": {Exited{PID: 101, Signal: SIGTERM}, "epoch 1 was killed with signal=15 before it was ready"},
	} {
		t.Run(name, func(t *testing.T) {
			ev := tt.ev
			m := New(safePolicy)
			for _, s := range epoch0Ready {
				m.Handle(s.ev)
			}
			m.Handle(hup)
			m.Handle(CheckFinished{Epoch: 1})
			if _, ok := ev.(SpawnFailed); !ok {
				m.Handle(Spawned{Epoch: 1, PID: 101})
			}
			acts := append(m.Handle(ev), m.Handle(TimerFired{Timer: GroupStopTimer})...)
			var notes []Notify
			for _, a := range acts {
				if n, ok := a.(Notify); ok {
					notes = append(notes, n)
				}
			}
			want := []Notify{{Stopping: true, Status: "shutting down: Due to abnormal exit, force killing all child processes and exiting"}}
			if diff := cmp.Diff(want, notes); diff != "" {
				t.Errorf("notifications (-want +got):\n%s", diff)
			}
			if got := m.Status().LastRestart; got == nil || got.Result != "failed" || got.Reason != tt.reason {
				t.Errorf("last restart = %+v, want failed with reason %q", got, tt.reason)
			}
		})
	}
}
