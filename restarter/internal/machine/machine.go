package machine

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/envoy-restarter/restarter/restarter/status"
)

// KillWait bounds how long the restarter waits for SIGKILLed children to be
// reaped before it gives up on them and exits anyway (a process stuck in
// uninterruptible sleep must not hang the process manager).
const KillWait = 5 * time.Second

// GroupStopGrace is how long the verdict on an epoch killed by a stop signal
// (SIGTERM, SIGINT, SIGQUIT) is held while the restarter is running. A stop
// signal sent to the whole process group (supervisord's stopasgroup,
// dumb-init without --single-child, kill -TERM -PGID) reaches the epochs and
// the restarter together: the kernel signals every member of the group
// before any of them can be seen to die, so the restarter's own signal is
// already on its way when the epoch's death is reaped. If it arrives within
// the grace, the epoch's death is part of the stop; if not, it is the
// abnormal exit it looks like.
const GroupStopGrace = time.Second

// Policy is what the Machine is configured to do beyond hot-restarter.py's
// behaviour. Its zero value (plus TermWait) is that behaviour exactly.
type Policy struct {
	// TermWait is how long children get to exit after SIGTERM.
	TermWait time.Duration
	// Check runs a pre-restart check (RunCheck) before every hot restart.
	Check bool
	// Guard asks, before every hot restart, whether the cgroup has room for
	// a second Envoy (RunCheck too, answered with CheckFinished.Guard on a
	// refusal), even with no pre-restart check.
	Guard bool
	// Readiness probes each new epoch (WatchReady); a restart lasts until the
	// epoch is ready, and SIGHUPs meanwhile are coalesced into one restart.
	Readiness bool
	// ReadyTimeout bounds how long a new epoch gets to become ready.
	ReadyTimeout time.Duration
	// Notify emits Notify actions for the service manager.
	Notify bool
	// InitGate watches Envoy's INITIALIZING flag (WatchInit): no epoch is
	// forked while the newest one is initializing, an epoch is ready only
	// once it cleared the flag, and a flag left set by an epoch that died
	// initializing is cleared (ClearInit).
	InitGate bool
	// KeepOnFailedRestart keeps the older epochs serving when a new epoch
	// fails before it is ready (--on-failed-restart keep); the next attempt
	// reuses its epoch number.
	KeepOnFailedRestart bool
	// StopDrain, when positive, makes a stop drain Envoy's connections
	// first (StartDrain) for at most this long, ending as soon as none is
	// left (DrainProgress with 0); a second stop signal skips the rest.
	StopDrain time.Duration
	// Clock stamps the status; nil means time.Now.
	Clock func() time.Time
}

type phase int

const (
	running     phase = iota // serving; SIGHUP starts epochs
	draining                 // a stop signal came, with --stop-drain: Envoy drains its connections first
	terminating              // a stop signal came: TERM sent, newest epoch first; waiting up to termWait
	killing                  // SIGKILL sent to children; reaping them, then exit
	exited                   // Exit emitted; every later event is ignored
)

var phaseNames = [...]string{"running", "draining", "terminating", "killing", "exited"}

// stopping reports whether a stop is under way and no KILL was sent.
func (m *Machine) stopping() bool { return m.phase == draining || m.phase == terminating }

// child is one live epoch.
type child struct {
	pid, epoch int
	started    time.Time
	ready      bool // passed the readiness probe (or there is none)
	watching   bool // a readiness watcher probes it (WatchReady, not yet stopped)
	// initializing: Envoy's INITIALIZING flag is, or is about to be, set by
	// this epoch. The epoch is live once ready and not initializing.
	initializing bool
	initDone     bool // the flag was seen cleared: initializing never comes back
	usr1         bool // a SIGUSR1 waits until the epoch can take it
}

func (c *child) live() bool { return c.ready && !c.initializing }

// restart is a hot restart in progress: from the pre-restart check (or the
// spawn) until the new epoch is ready.
type restart struct {
	epoch    int
	checking bool     // a check runs (RunCheck, not yet finished or stopped)
	pid      int      // the new epoch's pid once spawned
	failure  string   // why it is being failed, once decided (readiness timeout)
	notReady string   // the last reason the readiness probe gave
	timed    bool     // its ReadyTimeoutTimer was set at the spawn
	waiters  []Waiter // reload requests answered with its outcome
	id       int      // its record in the history (0 for epoch 0's start)
	refused  bool     // the check refused it
	// heldInitializing says the new epoch, killed by a stop signal and held
	// (see Machine.held), died initializing: its INITIALIZING flag may need
	// healing.
	heldInitializing bool
}

// queuedRestart is the hot restart that SIGHUPs and reloads asked for while
// another was in progress: they are coalesced into one, started after it.
type queuedRestart struct {
	id       int      // its record in the history
	waiters  []Waiter // reload requests answered with its outcome
	slotHeld bool     // the hold on a still-exiting epoch's socket ids was logged
}

// Machine is the restarter's state machine: it holds every child, the hot
// restart in progress and the shutdown phase, and turns each Event into the
// Actions to perform. It does no I/O, so it is driven by the OS layer in
// production and by table tests. It is not safe for concurrent use: one
// goroutine owns it.
type Machine struct {
	policy    Policy
	phase     phase
	children  []child // live children, oldest epoch first
	nextEpoch int
	// code is the exit code once the phase is killing, or once an epoch
	// failed during the stop (see failedDuringStop, which lists them in
	// stopFailures).
	code         int
	stopFailures string

	// Every reload request waits in exactly one of restart.waiters and
	// queued.waiters until it is answered.
	restart  *restart       // nil when no hot restart is in progress
	queued   *queuedRestart // nil unless one more restart follows restart
	last     *status.RestartStatus
	counters status.Counters
	// history are the records of the last hot restart requests (history.go).
	history    []status.Restart
	lastRecord int

	// envoy: the epochs were seen in Envoy's shared memory region (by the
	// init gate), so they bind Envoy's domain sockets: see slotHolder.
	envoy bool
	// drainLeft is the last count of connections the drain reported (-1
	// before the first).
	drainLeft int
	// olderHeldBy is the pid of the newest epoch while the older epochs wait
	// for their TERM during a stop (0 otherwise): see termNewestFirst.
	olderHeldBy int
	// held are the pids of epochs killed by a stop signal while running,
	// whose verdict waits for GroupStopTimer or the restarter's own stop
	// signal.
	held    []int
	ignored map[Signal]bool // ignored signals already logged
}

// New returns a Machine following p.
func New(p Policy) *Machine {
	if p.Clock == nil {
		p.Clock = time.Now
	}
	return &Machine{policy: p, ignored: map[Signal]bool{}}
}

// PIDs returns the pids of the live children, oldest epoch first: the ones
// the OS layer must reap.
func (m *Machine) PIDs() []int {
	pids := make([]int, len(m.children))
	for i, c := range m.children {
		pids[i] = c.pid
	}
	return pids
}

// Newest returns the newest live child's epoch and pid, ok=false for none.
func (m *Machine) Newest() (epoch, pid int, ok bool) {
	if len(m.children) == 0 {
		return 0, 0, false
	}
	c := m.children[len(m.children)-1]
	return c.epoch, c.pid, true
}

// Untold returns the newest epoch if its INITIALIZING flag was neither seen
// set nor seen cleared (nor given up on) yet: what the event loop looks at
// itself before a hot restart request (InitStarted), as the epoch's watcher
// may not have told.
func (m *Machine) Untold() (epoch, pid int, ok bool) {
	if len(m.children) == 0 {
		return 0, 0, false
	}
	c := m.children[len(m.children)-1]
	return c.epoch, c.pid, !c.initializing && !c.initDone
}

// Handle applies ev and returns the actions to perform, in order.
func (m *Machine) Handle(ev Event) []Action {
	if m.phase == exited {
		return nil
	}
	switch ev := ev.(type) {
	case Started:
		return m.beginRestart(nil, 0)
	case Spawned:
		return m.spawned(ev)
	case SpawnFailed:
		return m.spawnFailed(ev)
	case Exited:
		return m.exited(ev)
	case Signaled:
		return m.signaled(ev.Signal)
	case TimerFired:
		return m.timerFired(ev.Timer)
	case CheckFinished:
		return m.checkFinished(ev)
	case Ready:
		return m.ready(ev.Epoch)
	case NotReady:
		return m.notReady(ev)
	case InitStarted:
		return m.initStarted(ev.Epoch)
	case InitDone:
		return m.initDone(ev)
	case InitCleared:
		return m.initCleared(ev)
	case ReloadRequested:
		return m.reloadRequested(ev)
	case WatchChanged:
		return m.watchChanged(ev)
	case DrainProgress:
		return m.drainProgress(ev)
	}
	panic(fmt.Sprintf("machine: unknown event %T", ev))
}

func (m *Machine) notify(n Notify) []Action {
	if !m.policy.Notify {
		return nil
	}
	return []Action{n}
}

// exit ends the machine with code. A reload still waiting (the last epoch
// exited during a check) is answered first.
func (m *Machine) exit(code int, why string) []Action {
	m.phase = exited
	acts := m.abandonRestarts("the restarter is exiting")
	if why != "" {
		acts = append(acts, info(why))
	}
	return append(acts, info(fmt.Sprintf("exiting with code=%d", code), "code", code), Exit{Code: code})
}

// indexOf returns the index of the live child with pid, or -1.
func (m *Machine) indexOf(pid int) int {
	return slices.IndexFunc(m.children, func(c child) bool { return c.pid == pid })
}

// indexOfEpoch returns the index of the live child of epoch, or -1.
func (m *Machine) indexOfEpoch(epoch int) int {
	return slices.IndexFunc(m.children, func(c child) bool { return c.epoch == epoch })
}

func info(msg string, args ...any) Log { return Log{Level: slog.LevelInfo, Msg: msg, Args: args} }

func logf(level slog.Level, format string, a ...any) Log {
	return Log{Level: level, Msg: fmt.Sprintf(format, a...)}
}
