package machine

import (
	"strconv"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/status"
	"github.com/google/go-cmp/cmp"
)

// The machine's table tests compare actions with log lines left out: they
// pin behaviour. The operator-visible messages, a compatibility contract
// with hot-restarter.py, are pinned once, in TestOperatorMessages.

const testTermWait = 30 * time.Second

// step is one event fed to the machine and the actions, log lines left
// out, it must answer with.
type step struct {
	ev   Event
	want []Action
}

// do lists the actions a step wants; do() is none.
func do(acts ...Action) []Action { return acts }

func sends(pid int, sig Signal) Action { return Kill{PID: pid, Signal: sig} }

var (
	hup  = Signaled{Signal: SIGHUP}
	usr1 = Signaled{Signal: SIGUSR1}
	term = Signaled{Signal: SIGTERM}
	intr = Signaled{Signal: SIGINT}

	termWait = SetTimer{Timer: TermWaitTimer, After: testTermWait}
	killWait = SetTimer{Timer: KillWaitTimer, After: KillWait}
	// holdOlder and stopOlder arm and stop the wait of the older epochs
	// for their TERM while the newest stops first.
	holdOlder = SetTimer{Timer: OlderTermTimer, After: testTermWait / 2}
	stopOlder = StopTimer{Timer: OlderTermTimer}
)

func spawned(epoch, pid int) step { return step{Spawned{Epoch: epoch, PID: pid}, nil} }

// withoutLogs returns acts without its Log actions, and without the
// history's records (Recorded, ReloadResult.Restart): the history has
// tests of its own (history_test.go).
func withoutLogs(acts []Action) []Action {
	var out []Action
	for _, a := range acts {
		switch a := a.(type) {
		case Log, Recorded:
		case ReloadResult:
			a.Restart = status.Restart{}
			out = append(out, a)
		default:
			out = append(out, a)
		}
	}
	return out
}

// then returns the steps of given followed by more.
func then(given []step, more ...step) []step {
	return append(append([]step{}, given...), more...)
}

// play feeds steps to m, comparing actions with log lines left out. It
// also checks the machine's promises on every list: Exit is last, and every
// reload request is answered exactly once, at the latest just before Exit.
func play(t *testing.T, m *Machine, steps []step) {
	t.Helper()
	waiting := map[Waiter]bool{}
	for i, s := range steps {
		if r, ok := s.ev.(ReloadRequested); ok {
			waiting[r.Waiter] = true
		}
		got := m.Handle(s.ev)
		if diff := cmp.Diff(s.want, withoutLogs(got)); diff != "" {
			t.Fatalf("step %d (%T%+v): actions mismatch (-want +got):\n%s", i, s.ev, s.ev, diff)
		}
		for j, a := range got {
			switch a := a.(type) {
			case ReloadResult:
				if !waiting[a.Waiter] {
					t.Fatalf("step %d: %+v answers a reload that is not waiting", i, a)
				}
				delete(waiting, a.Waiter)
			case Exit:
				if j != len(got)-1 {
					t.Fatalf("step %d: Exit is action %d of %d, want last", i, j, len(got))
				}
				if len(waiting) > 0 {
					t.Fatalf("step %d: Exit with %d reload requests unanswered", i, len(waiting))
				}
			}
		}
	}
}

// Two epochs running: pids 100 (epoch 0) and 101 (epoch 1).
var twoEpochs = []step{
	{Started{}, do(Spawn{Epoch: 0})},
	spawned(0, 100),
	{hup, do(Spawn{Epoch: 1})},
	spawned(1, 101),
}

// stopWaiter is a reload request made during a stop.
var stopWaiter = Waiter(100)

// threeEpochs: pids 100, 101 and 102 (epochs 0 to 2).
var threeEpochs = then(twoEpochs, step{hup, do(Spawn{Epoch: 2})}, spawned(2, 102))

// oneEpoch: epoch 0 running as pid 100.
var oneEpoch = twoEpochs[:2]

func TestMachine(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		pids  []int // live children after the last step
	}{
		{
			name:  "start forks epoch 0",
			steps: oneEpoch,
			pids:  []int{100},
		},
		{
			name:  "SIGHUP starts the next epoch",
			steps: twoEpochs,
			pids:  []int{100, 101},
		},
		{
			name: "epoch numbers are never reused, even after a drained epoch left",
			steps: then(twoEpochs,
				step{Exited{PID: 100}, nil},
				step{hup, do(Spawn{Epoch: 2})},
				spawned(2, 102),
			),
			pids: []int{101, 102},
		},
		{
			name:  "SIGUSR1 is forwarded to every live child",
			steps: then(twoEpochs, step{usr1, do(sends(100, SIGUSR1), sends(101, SIGUSR1))}),
			pids:  []int{100, 101},
		},
		{
			// Envoy's shutdown sends its parent a Terminate: the parent must still
			// be there to get it, or the newest epoch retries for ten seconds and
			// aborts.
			name: "SIGTERM: TERM to the newest epoch, to the older ones once it is reaped; exit 0 when the last is",
			steps: then(twoEpochs,
				step{term, do(sends(101, SIGTERM), holdOlder, termWait)},
				step{Exited{PID: 101}, do(stopOlder, sends(100, SIGTERM))},
				step{Exited{PID: 100}, do(Exit{Code: 0})},
			),
		},
		{
			name: "SIGTERM: a newest epoch still running at half the term wait no longer holds the older ones",
			steps: then(threeEpochs,
				step{term, do(sends(102, SIGTERM), holdOlder, termWait)},
				step{TimerFired{Timer: OlderTermTimer}, do(sends(100, SIGTERM), sends(101, SIGTERM))},
				step{Exited{PID: 100}, nil},
				step{Exited{PID: 101}, nil},
				step{Exited{PID: 102}, do(Exit{Code: 0})},
			),
		},
		{
			name: "SIGTERM: older epochs exiting on their own during the stop leave none to TERM",
			steps: then(threeEpochs,
				step{term, do(sends(102, SIGTERM), holdOlder, termWait)},
				step{Exited{PID: 100}, nil}, // terminated by epoch 2's start
				step{Exited{PID: 101}, nil}, // terminated by epoch 2's shutdown
				step{TimerFired{Timer: OlderTermTimer}, nil},
				step{Exited{PID: 102}, do(Exit{Code: 0})},
			),
		},
		{
			name: "SIGTERM: the older epochs get TERM when the newest is reaped, even if it died abnormally (exit 1)",
			steps: then(threeEpochs,
				step{term, do(sends(102, SIGTERM), holdOlder, termWait)},
				step{Exited{PID: 100}, nil},
				step{Exited{PID: 102, Signal: SIGABRT}, do(stopOlder, sends(101, SIGTERM))},
				step{TimerFired{Timer: OlderTermTimer}, nil}, // already on its way
				step{Exited{PID: 101}, do(Exit{Code: 1})},
			),
		},
		{
			name: "SIGTERM: a SIGHUP or a reload while the older epochs wait starts nothing",
			steps: then(twoEpochs,
				step{term, do(sends(101, SIGTERM), holdOlder, termWait)},
				step{hup, nil},
				step{ReloadRequested{Waiter: stopWaiter}, do(ReloadResult{Waiter: stopWaiter, Reason: "shutdown in progress"})},
				step{Exited{PID: 101}, do(stopOlder, sends(100, SIGTERM))},
				step{Exited{PID: 100}, do(Exit{Code: 0})},
			),
		},
		{
			name: "SIGTERM: a second SIGTERM while the older epochs wait KILLs every epoch at once",
			steps: then(twoEpochs,
				step{term, do(sends(101, SIGTERM), holdOlder, termWait)},
				step{term, do(stopOlder, sends(100, SIGKILL), sends(101, SIGKILL), killWait)},
				step{TimerFired{Timer: OlderTermTimer}, nil}, // already on its way
				step{Exited{PID: 101, Signal: SIGKILL}, nil},
				step{Exited{PID: 100, Signal: SIGKILL}, do(Exit{Code: 1})},
			),
		},
		{
			name: "SIGTERM: the term wait KILLs the newest and the older epochs alike",
			steps: then(twoEpochs,
				step{term, do(sends(101, SIGTERM), holdOlder, termWait)},
				step{TimerFired{Timer: OlderTermTimer}, do(sends(100, SIGTERM))},
				step{TimerFired{Timer: TermWaitTimer}, do(sends(100, SIGKILL), sends(101, SIGKILL), killWait)},
				step{Exited{PID: 100, Signal: SIGKILL}, nil},
				step{Exited{PID: 101, Signal: SIGKILL}, do(Exit{Code: 1})},
			),
		},
		{
			name: "SIGTERM: an abnormal exit while the older epochs wait kills nothing, and makes the exit code 1",
			steps: then(twoEpochs,
				step{term, do(sends(101, SIGTERM), holdOlder, termWait)},
				step{Exited{PID: 100, Code: 1}, nil},
				step{Exited{PID: 101}, do(Exit{Code: 1})},
			),
		},
		{
			name: "SIGINT behaves as SIGTERM",
			steps: then(oneEpoch,
				step{intr, do(sends(100, SIGTERM), termWait)},
				step{Exited{PID: 100}, do(Exit{Code: 0})},
			),
		},
		{
			name: "SIGTERM: children still running after the wait are KILLed, exit 1",
			steps: then(twoEpochs,
				step{term, do(sends(101, SIGTERM), holdOlder, termWait)},
				step{TimerFired{Timer: OlderTermTimer}, do(sends(100, SIGTERM))},
				step{Exited{PID: 100}, nil},
				step{TimerFired{Timer: TermWaitTimer}, do(sends(101, SIGKILL), killWait)},
				step{Exited{PID: 101, Signal: SIGKILL}, do(Exit{Code: 1})},
			),
		},
		{
			// The OS layer reaps before it delivers a timer, so the exit comes first
			// and the stale timer must not kill anything or change the exit code.
			name: "race: a child exits in the last instant of the term wait",
			steps: then(oneEpoch,
				step{term, do(sends(100, SIGTERM), termWait)},
				step{Exited{PID: 100}, do(Exit{Code: 0})},
				step{TimerFired{Timer: TermWaitTimer}, nil},
			),
		},
		{
			name: "a child that survives SIGKILL does not hang the restarter",
			steps: then(oneEpoch,
				step{term, do(sends(100, SIGTERM), termWait)},
				step{TimerFired{Timer: TermWaitTimer}, do(sends(100, SIGKILL), killWait)},
				step{TimerFired{Timer: KillWaitTimer}, do(Exit{Code: 1})},
			),
			pids: []int{100},
		},
		{
			name:  "a drained epoch exiting 0 keeps the restarter running",
			steps: then(twoEpochs, step{Exited{PID: 100}, nil}),
			pids:  []int{101},
		},
		{
			name: "the last child exiting 0 ends the restarter with 0",
			steps: then(twoEpochs,
				step{Exited{PID: 100}, nil},
				step{Exited{PID: 101}, do(Exit{Code: 0})},
			),
		},
		{
			name: "a child exiting non-zero KILLs the others, reaps them, exit 1",
			steps: then(twoEpochs,
				step{Exited{PID: 101, Code: 1}, do(sends(100, SIGKILL), killWait)},
				step{Exited{PID: 100, Signal: SIGKILL}, do(Exit{Code: 1})},
			),
		},
		{
			name: "a child killed by a signal KILLs the others, exit 1",
			steps: then(twoEpochs,
				step{Exited{PID: 100, Signal: SIGSEGV}, do(sends(101, SIGKILL), killWait)},
				step{Exited{PID: 101, Signal: SIGKILL}, do(Exit{Code: 1})},
			),
		},
		{
			name:  "the only child failing exits 1 at once",
			steps: then(oneEpoch, step{Exited{PID: 100, Code: 1}, do(Exit{Code: 1})}),
		},
		{
			// The OS layer answers a Spawn before anything else, so a child that
			// dies at once is reaped only after it was booked: it counts as a
			// failed epoch, never as an unknown pid.
			name: "race: a child dies between fork and bookkeeping",
			steps: then(oneEpoch,
				step{hup, do(Spawn{Epoch: 1})},
				spawned(1, 101),
				step{Exited{PID: 101, Code: 127}, do(sends(100, SIGKILL), killWait)},
			),
			pids: []int{100},
		},
		{
			name: "exec failure at a later epoch is a failed child: KILL the others, exit 1",
			steps: then(oneEpoch,
				step{hup, do(Spawn{Epoch: 1})},
				step{SpawnFailed{Epoch: 1, Err: "cannot execute /x: no such file or directory (errno=2 ENOENT)"}, do(sends(100, SIGKILL), killWait)},
			),
			pids: []int{100},
		},
		{
			name: "exec failure at epoch 0: exit 1",
			steps: []step{
				{Started{}, do(Spawn{Epoch: 0})},
				{SpawnFailed{Epoch: 0, Err: "boom"}, do(Exit{Code: 1})},
			},
		},
		{
			name: "SIGHUP during shutdown starts no epoch",
			steps: then(oneEpoch,
				step{term, do(sends(100, SIGTERM), termWait)},
				step{hup, nil},
				step{Exited{PID: 100}, do(Exit{Code: 0})},
			),
		},
		{
			name: "SIGHUP while killing after an abnormal exit starts no epoch",
			steps: then(twoEpochs,
				step{Exited{PID: 101, Code: 1}, do(sends(100, SIGKILL), killWait)},
				step{hup, nil},
			),
			pids: []int{100},
		},
		{
			// The OS layer collects exits before signals: the failure wins and the
			// later SIGTERM changes nothing.
			name: "race: SIGTERM while an abnormal exit is being handled",
			steps: then(twoEpochs,
				step{Exited{PID: 101, Signal: SIGSEGV}, do(sends(100, SIGKILL), killWait)},
				step{term, nil},
				step{Exited{PID: 100, Signal: SIGKILL}, do(Exit{Code: 1})},
			),
		},
		{
			name: "race: SIGTERM just after a drained epoch was reaped",
			steps: then(twoEpochs,
				step{Exited{PID: 100}, nil},
				step{term, do(sends(101, SIGTERM), termWait)},
				step{Exited{PID: 101}, do(Exit{Code: 0})},
			),
		},
		{
			name: "a burst of SIGHUPs starts one epoch each, numbered in order",
			steps: then(oneEpoch,
				step{hup, do(Spawn{Epoch: 1})},
				spawned(1, 101),
				step{hup, do(Spawn{Epoch: 2})},
				spawned(2, 102),
				step{hup, do(Spawn{Epoch: 3})},
				spawned(3, 103),
				step{usr1, do(sends(100, SIGUSR1), sends(101, SIGUSR1), sends(102, SIGUSR1), sends(103, SIGUSR1))},
			),
			pids: []int{100, 101, 102, 103},
		},
		{
			name:  "an orphan reaped as subreaper is not an epoch",
			steps: then(oneEpoch, step{Exited{PID: 555, Code: 1}, nil}),
			pids:  []int{100},
		},
		{
			name: "SIGTERM after the machine exited does nothing",
			steps: then(twoEpochs,
				step{Exited{PID: 100}, nil},
				step{Exited{PID: 101}, do(Exit{Code: 0})},
				step{term, nil},
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Policy{TermWait: testTermWait})
			play(t, m, tt.steps)
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
	m := New(Policy{TermWait: testTermWait})
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
	sigs := []Signaled{hup, usr1, hup, hup}
	for i := 0; i < 1000; i++ {
		handle(sigs[i%len(sigs)])
		if i%7 == 0 && len(m.PIDs()) > 3 {
			handle(Exited{PID: m.PIDs()[0]}) // the oldest epoch drained
		}
	}
	if got := len(m.PIDs()); got == 0 {
		t.Fatal("storm left no children; want the latest epochs alive")
	}
	acts := handle(term)
	for i := 0; i < 10; i++ {
		acts = append(acts, handle(hup)...)
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
	m := New(Policy{TermWait: testTermWait})
	m.Handle(Started{})
	m.Handle(Spawned{Epoch: 0, PID: 1})
	for i := 0; i < b.N; i++ {
		m.Handle(hup)
		m.Handle(Spawned{Epoch: i + 1, PID: i + 2})
		m.Handle(Exited{PID: i + 1})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// cat joins lists of actions.
func cat(lists ...[]Action) []Action {
	var out []Action
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
