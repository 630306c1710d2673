package supervisor

import (
	"log/slog"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testTermWait = 30 * time.Second

// step is one event fed to the machine and the actions it must answer with.
type step struct {
	ev   Event
	want []Action
}

// Shorthands so each scenario reads as the log an operator would see.
func say(msg string, args ...any) Action { return Log{Level: slog.LevelInfo, Msg: msg, Args: args} }
func warn(msg string, args ...any) Action {
	return Log{Level: slog.LevelWarn, Msg: msg, Args: args}
}
func forking(epoch int) []Action {
	return []Action{say("forking and execing new child process at epoch "+itoa(epoch), "epoch", epoch), Spawn{Epoch: epoch}}
}
func forked(epoch, pid int) step {
	return step{Spawned{Epoch: epoch, PID: pid}, []Action{say("forked new child process with PID="+itoa(pid), "pid", pid, "epoch", epoch)}}
}
func exitedOK(pid, epoch int) Action {
	return say("PID="+itoa(pid)+" exited with code=0", "pid", pid, "epoch", epoch, "code", 0)
}
func exitedCode(pid, epoch, code int) Action {
	return warn("PID="+itoa(pid)+" exited with code="+itoa(code), "pid", pid, "epoch", epoch, "code", code)
}
func killedBy(pid, epoch int, sig syscall.Signal) Action {
	return warn("PID="+itoa(pid)+" was killed with signal="+itoa(int(sig)), "pid", pid, "epoch", epoch, "signal", int(sig), "signal_name", signalName(sig))
}
func sending(what string, sig syscall.Signal, pid, epoch int) []Action {
	return []Action{say("sending "+what+" to PID="+itoa(pid), "pid", pid, "epoch", epoch), Kill{PID: pid, Signal: sig}}
}
func forceKill(pid, epoch int) []Action {
	return []Action{say("force killing PID="+itoa(pid), "pid", pid, "epoch", epoch), Kill{PID: pid, Signal: syscall.SIGKILL}}
}
func exitWith(code int) []Action {
	return []Action{say("exiting with code="+itoa(code), "code", code), Exit{Code: code}}
}

const abnormal = "Due to abnormal exit, force killing all child processes and exiting"

func cat(parts ...any) []Action {
	var out []Action
	for _, p := range parts {
		switch p := p.(type) {
		case Action:
			out = append(out, p)
		case []Action:
			out = append(out, p...)
		}
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// Two epochs running: pids 100 (epoch 0) and 101 (epoch 1).
var twoEpochs = []step{
	{Started{}, forking(0)},
	forked(0, 100),
	{Signaled{Signal: syscall.SIGHUP}, cat(say("got SIGHUP"), forking(1))},
	forked(1, 101),
}

func TestMachine(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		pids  []int // live children after the last step
	}{
		{
			name:  "start forks epoch 0",
			steps: twoEpochs[:2],
			pids:  []int{100},
		},
		{
			name:  "SIGHUP starts the next epoch",
			steps: twoEpochs,
			pids:  []int{100, 101},
		},
		{
			name: "epoch numbers are never reused, even after a drained epoch left",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 100}, cat(exitedOK(100, 0))},
				step{Signaled{Signal: syscall.SIGHUP}, cat(say("got SIGHUP"), forking(2))},
				forked(2, 102),
			),
			pids: []int{101, 102},
		},
		{
			name: "SIGUSR1 is forwarded to every live child",
			steps: append(append([]step{}, twoEpochs...),
				step{Signaled{Signal: syscall.SIGUSR1}, cat(say("got SIGUSR1"), sending("SIGUSR1", syscall.SIGUSR1, 100, 0), sending("SIGUSR1", syscall.SIGUSR1, 101, 1))},
			),
			pids: []int{100, 101},
		},
		{
			name: "SIGTERM: TERM to all, exit 0 as soon as the last child is reaped",
			steps: append(append([]step{}, twoEpochs...),
				step{Signaled{Signal: syscall.SIGTERM}, cat(say("got SIGTERM"), sending("TERM", syscall.SIGTERM, 100, 0), sending("TERM", syscall.SIGTERM, 101, 1), SetTimer{Timer: TermWaitTimer, After: testTermWait})},
				step{Exited{PID: 101}, cat(exitedOK(101, 1))},
				step{Exited{PID: 100, Code: 3}, cat(exitedCode(100, 0, 3), say("all children exited cleanly"), exitWith(0))},
			),
		},
		{
			name: "SIGINT behaves as SIGTERM",
			steps: append(append([]step{}, twoEpochs[:2]...),
				step{Signaled{Signal: syscall.SIGINT}, cat(say("got SIGINT"), sending("TERM", syscall.SIGTERM, 100, 0), SetTimer{Timer: TermWaitTimer, After: testTermWait})},
				step{Exited{PID: 100}, cat(exitedOK(100, 0), say("all children exited cleanly"), exitWith(0))},
			),
		},
		{
			name: "SIGTERM: children still running after the wait are KILLed, exit 1",
			steps: append(append([]step{}, twoEpochs...),
				step{Signaled{Signal: syscall.SIGTERM}, cat(say("got SIGTERM"), sending("TERM", syscall.SIGTERM, 100, 0), sending("TERM", syscall.SIGTERM, 101, 1), SetTimer{Timer: TermWaitTimer, After: testTermWait})},
				step{Exited{PID: 100}, cat(exitedOK(100, 0))},
				step{TimerFired{Timer: TermWaitTimer}, cat(warn("children still running after --term-wait=30s"), forceKill(101, 1), SetTimer{Timer: KillWaitTimer, After: KillWait})},
				step{Exited{PID: 101, Signal: syscall.SIGKILL}, cat(killedBy(101, 1, syscall.SIGKILL), say("all children reaped"), exitWith(1))},
			),
		},
		{
			// The OS layer reaps before it delivers a timer, so the exit comes first
			// and the stale timer must not kill anything or change the exit code.
			name: "race: a child exits in the last instant of the term wait",
			steps: append(append([]step{}, twoEpochs[:2]...),
				step{Signaled{Signal: syscall.SIGTERM}, cat(say("got SIGTERM"), sending("TERM", syscall.SIGTERM, 100, 0), SetTimer{Timer: TermWaitTimer, After: testTermWait})},
				step{Exited{PID: 100}, cat(exitedOK(100, 0), say("all children exited cleanly"), exitWith(0))},
				step{TimerFired{Timer: TermWaitTimer}, nil},
			),
		},
		{
			name: "a child that survives SIGKILL does not hang the restarter",
			steps: append(append([]step{}, twoEpochs[:2]...),
				step{Signaled{Signal: syscall.SIGTERM}, cat(say("got SIGTERM"), sending("TERM", syscall.SIGTERM, 100, 0), SetTimer{Timer: TermWaitTimer, After: testTermWait})},
				step{TimerFired{Timer: TermWaitTimer}, cat(warn("children still running after --term-wait=30s"), forceKill(100, 0), SetTimer{Timer: KillWaitTimer, After: KillWait})},
				step{TimerFired{Timer: KillWaitTimer}, cat(Log{Level: slog.LevelError, Msg: "PID=100 did not exit after SIGKILL; giving up on it"}, exitWith(1))},
			),
			pids: []int{100},
		},
		{
			name: "a drained epoch exiting 0 keeps the restarter running",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 100}, cat(exitedOK(100, 0))},
			),
			pids: []int{101},
		},
		{
			name: "the last child exiting 0 ends the restarter with 0",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 100}, cat(exitedOK(100, 0))},
				step{Exited{PID: 101}, cat(exitedOK(101, 1), say("exiting due to lack of child processes"), exitWith(0))},
			),
		},
		{
			name: "a child exiting non-zero KILLs the others, reaps them, exit 1",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 101, Code: 1}, cat(exitedCode(101, 1, 1), warn(abnormal), forceKill(100, 0), SetTimer{Timer: KillWaitTimer, After: KillWait})},
				step{Exited{PID: 100, Signal: syscall.SIGKILL}, cat(killedBy(100, 0, syscall.SIGKILL), say("all children reaped"), exitWith(1))},
			),
		},
		{
			name: "a child killed by a signal KILLs the others, exit 1",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 100, Signal: syscall.SIGSEGV}, cat(killedBy(100, 0, syscall.SIGSEGV), warn(abnormal), forceKill(101, 1), SetTimer{Timer: KillWaitTimer, After: KillWait})},
				step{Exited{PID: 101, Signal: syscall.SIGKILL}, cat(killedBy(101, 1, syscall.SIGKILL), say("all children reaped"), exitWith(1))},
			),
		},
		{
			name: "the only child failing exits 1 at once",
			steps: append(append([]step{}, twoEpochs[:2]...),
				step{Exited{PID: 100, Code: 1}, cat(exitedCode(100, 0, 1), warn(abnormal), say("exiting with code=1", "code", 1), Exit{Code: 1})},
			),
		},
		{
			// The OS layer answers a Spawn before anything else, so a child that
			// dies at once is reaped only after it was booked: it counts as a
			// failed epoch, never as an unknown pid.
			name: "race: a child dies between fork and bookkeeping",
			steps: append(append([]step{}, twoEpochs[:2]...),
				step{Signaled{Signal: syscall.SIGHUP}, cat(say("got SIGHUP"), forking(1))},
				forked(1, 101),
				step{Exited{PID: 101, Code: 127}, cat(exitedCode(101, 1, 127), warn(abnormal), forceKill(100, 0), SetTimer{Timer: KillWaitTimer, After: KillWait})},
			),
			pids: []int{100},
		},
		{
			name: "exec failure at a later epoch is a failed child: KILL the others, exit 1",
			steps: append(append([]step{}, twoEpochs[:2]...),
				step{Signaled{Signal: syscall.SIGHUP}, cat(say("got SIGHUP"), forking(1))},
				step{SpawnFailed{Epoch: 1, Err: "cannot execute /x: no such file or directory (errno=2 ENOENT)"}, cat(
					Log{Level: slog.LevelError, Msg: "epoch 1: cannot execute /x: no such file or directory (errno=2 ENOENT)"},
					warn(abnormal), forceKill(100, 0), SetTimer{Timer: KillWaitTimer, After: KillWait})},
			),
			pids: []int{100},
		},
		{
			name: "exec failure at epoch 0: exit 1",
			steps: []step{
				{Started{}, forking(0)},
				{SpawnFailed{Epoch: 0, Err: "boom"}, cat(Log{Level: slog.LevelError, Msg: "epoch 0: boom"}, warn(abnormal), exitWith(1))},
			},
		},
		{
			name: "SIGHUP during shutdown starts no epoch",
			steps: append(append([]step{}, twoEpochs[:2]...),
				step{Signaled{Signal: syscall.SIGTERM}, cat(say("got SIGTERM"), sending("TERM", syscall.SIGTERM, 100, 0), SetTimer{Timer: TermWaitTimer, After: testTermWait})},
				step{Signaled{Signal: syscall.SIGHUP}, cat(say("got SIGHUP"), say("ignoring SIGHUP: shutdown in progress"))},
				step{Exited{PID: 100}, cat(exitedOK(100, 0), say("all children exited cleanly"), exitWith(0))},
			),
		},
		{
			name: "SIGHUP while killing after an abnormal exit starts no epoch",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 101, Code: 1}, cat(exitedCode(101, 1, 1), warn(abnormal), forceKill(100, 0), SetTimer{Timer: KillWaitTimer, After: KillWait})},
				step{Signaled{Signal: syscall.SIGHUP}, cat(say("got SIGHUP"), say("ignoring SIGHUP: shutdown in progress"))},
			),
			pids: []int{100},
		},
		{
			// The OS layer collects exits before signals: the failure wins and the
			// later SIGTERM changes nothing.
			name: "race: SIGTERM while an abnormal exit is being handled",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 101, Signal: syscall.SIGSEGV}, cat(killedBy(101, 1, syscall.SIGSEGV), warn(abnormal), forceKill(100, 0), SetTimer{Timer: KillWaitTimer, After: KillWait})},
				step{Signaled{Signal: syscall.SIGTERM}, cat(say("got SIGTERM"), say("ignoring SIGTERM: shutdown in progress"))},
				step{Exited{PID: 100, Signal: syscall.SIGKILL}, cat(killedBy(100, 0, syscall.SIGKILL), say("all children reaped"), exitWith(1))},
			),
		},
		{
			name: "race: SIGTERM just after a drained epoch was reaped",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 100}, cat(exitedOK(100, 0))},
				step{Signaled{Signal: syscall.SIGTERM}, cat(say("got SIGTERM"), sending("TERM", syscall.SIGTERM, 101, 1), SetTimer{Timer: TermWaitTimer, After: testTermWait})},
				step{Exited{PID: 101}, cat(exitedOK(101, 1), say("all children exited cleanly"), exitWith(0))},
			),
		},
		{
			name: "a burst of SIGHUPs starts one epoch each, numbered in order",
			steps: append(append([]step{}, twoEpochs[:2]...),
				step{Signaled{Signal: syscall.SIGHUP}, cat(say("got SIGHUP"), forking(1))},
				forked(1, 101),
				step{Signaled{Signal: syscall.SIGHUP}, cat(say("got SIGHUP"), forking(2))},
				forked(2, 102),
				step{Signaled{Signal: syscall.SIGHUP}, cat(say("got SIGHUP"), forking(3))},
				forked(3, 103),
				step{Signaled{Signal: syscall.SIGUSR1}, cat(say("got SIGUSR1"),
					sending("SIGUSR1", syscall.SIGUSR1, 100, 0), sending("SIGUSR1", syscall.SIGUSR1, 101, 1),
					sending("SIGUSR1", syscall.SIGUSR1, 102, 2), sending("SIGUSR1", syscall.SIGUSR1, 103, 3))},
			),
			pids: []int{100, 101, 102, 103},
		},
		{
			name: "an orphan reaped as subreaper is not an epoch",
			steps: append(append([]step{}, twoEpochs[:2]...),
				step{Exited{PID: 555, Code: 1}, cat(Log{Level: slog.LevelDebug, Msg: "reaped PID=555, which is not an epoch"})},
			),
			pids: []int{100},
		},
		{
			name: "SIGTERM with no children exits 0 at once",
			steps: append(append([]step{}, twoEpochs...),
				step{Exited{PID: 100}, cat(exitedOK(100, 0))},
				step{Exited{PID: 101}, cat(exitedOK(101, 1), say("exiting due to lack of child processes"), exitWith(0))},
				step{Signaled{Signal: syscall.SIGTERM}, nil}, // the machine has exited: nothing more happens
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMachine(Policy{TermWait: testTermWait})
			for i, s := range tt.steps {
				got := m.Handle(s.ev)
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Fatalf("step %d (%T%+v): actions mismatch (-want +got):\n%s", i, s.ev, s.ev, diff)
				}
			}
			if diff := cmp.Diff(tt.pids, m.PIDs(), cmpEmpty); diff != "" {
				t.Errorf("live children mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpEmpty = cmp.Comparer(func(a, b []int) bool { return cmp.Equal(a, b) || len(a) == 0 && len(b) == 0 })

// TestMachineSignalStorm feeds a random-looking storm of signals and exits
// and checks the invariants: every action list ends the run at most once,
// Exit is last, and no Spawn happens after shutdown began.
func TestMachineSignalStorm(t *testing.T) {
	m := NewMachine(Policy{TermWait: testTermWait})
	pid := 1000
	handle := func(ev Event) []Action {
		acts := m.Handle(ev)
		for _, a := range acts {
			if s, ok := a.(Spawn); ok {
				pid++
				acts = append(acts, m.Handle(Spawned{Epoch: s.Epoch, PID: pid})...)
			}
		}
		return acts
	}
	handle(Started{})
	sigs := []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGHUP, syscall.SIGHUP}
	for i := 0; i < 1000; i++ {
		handle(Signaled{Signal: sigs[i%len(sigs)]})
		if i%7 == 0 && len(m.PIDs()) > 3 {
			handle(Exited{PID: m.PIDs()[0]}) // the oldest epoch drained
		}
	}
	if got := len(m.PIDs()); got == 0 {
		t.Fatal("storm left no children; want the latest epochs alive")
	}
	acts := handle(Signaled{Signal: syscall.SIGTERM})
	for i := 0; i < 10; i++ {
		acts = append(acts, handle(Signaled{Signal: syscall.SIGHUP})...)
	}
	for _, p := range m.PIDs() {
		acts = append(acts, handle(Exited{PID: p})...)
	}
	exits := 0
	for i, a := range acts {
		switch a := a.(type) {
		case Spawn:
			t.Fatalf("action %d: spawned epoch %d after SIGTERM", i, a.Epoch)
		case Exit:
			exits++
			if a.Code != 0 || i != len(acts)-1 {
				t.Fatalf("action %d: %+v; want one Exit{0}, last", i, a)
			}
		}
	}
	if exits != 1 {
		t.Fatalf("got %d Exit actions, want 1", exits)
	}
}

func BenchmarkMachineHotRestart(b *testing.B) {
	m := NewMachine(Policy{TermWait: testTermWait})
	m.Handle(Started{})
	m.Handle(Spawned{Epoch: 0, PID: 1})
	for i := 0; i < b.N; i++ {
		m.Handle(Signaled{Signal: syscall.SIGHUP})
		m.Handle(Spawned{Epoch: i + 1, PID: i + 2})
		m.Handle(Exited{PID: i + 1})
	}
}
