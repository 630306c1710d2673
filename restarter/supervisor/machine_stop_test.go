package supervisor

import (
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func held(pid, epoch int, sig syscall.Signal) []Action {
	return []Action{
		say("PID="+itoa(pid)+" was killed by "+signalName(sig)+", perhaps sent to the whole process group: waiting up to 1s for the restarter's own before calling it abnormal", "pid", pid, "epoch", epoch),
		SetTimer{Timer: GroupStopTimer, After: GroupStopGrace},
	}
}

func partOfStop(pid int) Action {
	return say("PID="+itoa(pid)+" was stopped by the same signal: part of the shutdown", "pid", pid)
}

// TestMachineStopSignals covers the stop signals as an operator's world sends
// them: to the whole process group, twice, SIGQUIT, and signals the
// restarter has no use for.
func TestMachineStopSignals(t *testing.T) {
	term := Signaled{Signal: syscall.SIGTERM}
	tests := []struct {
		name  string
		steps []step
		pids  []int
	}{
		{
			name: "group SIGTERM: the epoch's death reaped before the restarter's own signal is part of the stop",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 101, Signal: syscall.SIGTERM}, cat(killedBy(101, 1, syscall.SIGTERM), held(101, 1, syscall.SIGTERM))},
				step{term, cat(say("got SIGTERM"), partOfStop(101), sending("TERM", syscall.SIGTERM, 100, 0), SetTimer{Timer: TermWaitTimer, After: testTermWait})},
				step{TimerFired{Timer: GroupStopTimer}, nil}, // the verdict was given by the signal
				step{Exited{PID: 100}, cat(exitedOK(100, 0), say("all children exited cleanly"), exitWith(0))},
			),
		},
		{
			name: "group SIGTERM: every epoch dead before the restarter's own signal, exit 0",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 101, Signal: syscall.SIGTERM}, cat(killedBy(101, 1, syscall.SIGTERM), held(101, 1, syscall.SIGTERM))},
				step{Exited{PID: 100}, cat(exitedOK(100, 0))}, // no "lack of child processes" exit while a verdict is held
				step{Signaled{Signal: syscall.SIGINT}, cat(say("got SIGINT"), partOfStop(101), say("all children exited cleanly"), exitWith(0))},
			),
		},
		{
			name: "group SIGTERM: the restarter's own signal first",
			steps: append(append([]step{}, twoEpochs...),
				step{term, cat(say("got SIGTERM"), sending("TERM", syscall.SIGTERM, 100, 0), sending("TERM", syscall.SIGTERM, 101, 1), SetTimer{Timer: TermWaitTimer, After: testTermWait})},
				step{Exited{PID: 101, Signal: syscall.SIGTERM}, cat(killedBy(101, 1, syscall.SIGTERM))},
				step{Exited{PID: 100}, cat(exitedOK(100, 0), say("all children exited cleanly"), exitWith(0))},
			),
		},
		{
			name: "an epoch killed by SIGTERM with no stop signal for the restarter is abnormal after the grace",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 101, Signal: syscall.SIGTERM}, cat(killedBy(101, 1, syscall.SIGTERM), held(101, 1, syscall.SIGTERM))},
				step{TimerFired{Timer: GroupStopTimer}, cat(warn(abnormal), forceKill(100, 0), SetTimer{Timer: KillWaitTimer, After: KillWait})},
				step{term, cat(say("got SIGTERM"), say("ignoring SIGTERM: shutdown in progress"))},
				step{Exited{PID: 100, Signal: syscall.SIGKILL}, cat(killedBy(100, 0, syscall.SIGKILL), say("all children reaped"), exitWith(1))},
			),
		},
		{
			name: "another abnormal exit while a verdict is held aborts at once",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 101, Signal: syscall.SIGINT}, cat(killedBy(101, 1, syscall.SIGINT), held(101, 1, syscall.SIGINT))},
				step{Exited{PID: 100, Code: 3}, cat(exitedCode(100, 0, 3), warn(abnormal), exitWith(1))},
			),
		},
		{
			name: "a second SIGTERM during shutdown force kills at once",
			steps: append(append([]step{}, twoEpochs...),
				step{term, cat(say("got SIGTERM"), sending("TERM", syscall.SIGTERM, 100, 0), sending("TERM", syscall.SIGTERM, 101, 1), SetTimer{Timer: TermWaitTimer, After: testTermWait})},
				step{Signaled{Signal: syscall.SIGINT}, cat(say("got SIGINT"), warn("SIGINT during shutdown: force killing all child processes"),
					forceKill(100, 0), forceKill(101, 1), SetTimer{Timer: KillWaitTimer, After: KillWait})},
				step{Exited{PID: 100, Signal: syscall.SIGKILL}, cat(killedBy(100, 0, syscall.SIGKILL))},
				step{Exited{PID: 101, Signal: syscall.SIGKILL}, cat(killedBy(101, 1, syscall.SIGKILL), say("all children reaped"), exitWith(1))},
			),
		},
		{
			name: "SIGQUIT stops like SIGTERM",
			steps: append(append([]step{}, twoEpochs...),
				step{Signaled{Signal: syscall.SIGQUIT}, cat(say("got SIGQUIT"), sending("TERM", syscall.SIGTERM, 100, 0), sending("TERM", syscall.SIGTERM, 101, 1), SetTimer{Timer: TermWaitTimer, After: testTermWait})},
				step{Exited{PID: 100}, cat(exitedOK(100, 0))},
				step{Exited{PID: 101}, cat(exitedOK(101, 1), say("all children exited cleanly"), exitWith(0))},
			),
		},
		{
			name: "signals of no use are ignored and logged once each",
			steps: append(append([]step{}, twoEpochs...),
				step{Signaled{Signal: syscall.SIGUSR2}, cat(say("ignoring SIGUSR2 (logged once)"))},
				step{Signaled{Signal: syscall.SIGPIPE}, cat(say("ignoring SIGPIPE (logged once)"))},
				step{Signaled{Signal: syscall.SIGUSR2}, nil},
				step{Signaled{Signal: syscall.SIGPIPE}, nil},
			),
			pids: []int{100, 101},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMachine(Policy{TermWait: testTermWait})
			for i, s := range tt.steps {
				if diff := cmp.Diff(s.want, m.Handle(s.ev)); diff != "" {
					t.Fatalf("step %d (%T%+v): actions mismatch (-want +got):\n%s", i, s.ev, s.ev, diff)
				}
			}
			if diff := cmp.Diff(tt.pids, m.PIDs(), cmpEmpty); diff != "" {
				t.Errorf("live children mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMachineNeverReadyBeforeStopping checks that a failed hot restart that
// takes everything down tells the service manager STOPPING=1 without a
// READY=1 just before it, whichever way the restart failed.
func TestMachineNeverReadyBeforeStopping(t *testing.T) {
	for name, ev := range map[string]Event{
		"spawn failed":       SpawnFailed{Epoch: 1, Err: "cannot execute /x: no such file or directory (errno=2 ENOENT)"},
		"epoch died":         Exited{PID: 101, Code: 1},
		"epoch killed, held": Exited{PID: 101, Signal: syscall.SIGTERM},
	} {
		t.Run(name, func(t *testing.T) {
			m := NewMachine(safePolicy)
			steps := append(append([]step{}, epoch0Ready...), step{Signaled{Signal: syscall.SIGHUP}, nil}, step{CheckFinished{Epoch: 1}, nil})
			if _, ok := ev.(SpawnFailed); !ok {
				steps = append(steps, step{Spawned{Epoch: 1, PID: 101}, nil})
			}
			var acts []Action
			for _, s := range steps {
				m.Handle(s.ev)
			}
			acts = append(acts, m.Handle(ev)...)
			acts = append(acts, m.Handle(TimerFired{Timer: GroupStopTimer})...)
			var notes []Notify
			for _, a := range acts {
				if n, ok := a.(Notify); ok {
					notes = append(notes, n)
				}
			}
			want := []Notify{{Stopping: true, Status: "shutting down: " + abnormal}}
			if diff := cmp.Diff(want, notes); diff != "" {
				t.Errorf("notifications (-want +got):\n%s", diff)
			}
			if got := m.Status().LastRestart; got == nil || got.Result != "failed" || got.Reason == "" {
				t.Errorf("last restart = %+v, want failed with its reason", got)
			}
		})
	}
}
