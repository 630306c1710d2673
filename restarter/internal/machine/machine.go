package machine

import (
	"fmt"
	"github.com/envoy-restarter/restarter/restarter/status"
	"log/slog"
	"slices"
	"strings"
	"time"
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
	// Clock stamps the status; nil means time.Now.
	Clock func() time.Time
}

type phase int

const (
	running     phase = iota // serving; SIGHUP starts epochs
	terminating              // a stop signal came: TERM sent, newest epoch first; waiting up to termWait
	killing                  // SIGKILL sent to children; reaping them, then exit
	exited                   // Exit emitted; every later event is ignored
)

var phaseNames = [...]string{"running", "terminating", "killing", "exited"}

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

// takesUSR1 reports whether the epoch has installed its signal handlers, as
// far as the restarter can tell: until then SIGUSR1's default action kills
// it (Envoy installs them in RunHelper, after config load and server init).
// With the init gate, that is once it cleared INITIALIZING, or once the gate
// decided it is not Envoy, or once the readiness probe passed; without the
// gate, once the probe passed (at once when there is none).
func (m *Machine) takesUSR1(c *child) bool {
	if m.policy.InitGate && !c.initDone {
		return m.policy.Readiness && c.ready
	}
	return c.ready && !c.initializing
}

// sendHeldUSR1 sends child i the SIGUSR1 held for it, if any and it can take
// it now: exactly once.
func (m *Machine) sendHeldUSR1(i int) []Action {
	c := &m.children[i]
	if !c.usr1 || !m.takesUSR1(c) {
		return nil
	}
	c.usr1 = false
	return []Action{info(fmt.Sprintf("sending SIGUSR1 to PID=%d", c.pid), "pid", c.pid, "epoch", c.epoch), Kill{PID: c.pid, Signal: SIGUSR1}}
}

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
	// heldInitializing says the new epoch, killed by a stop signal and held
	// (see Machine.held), died initializing: its INITIALIZING flag may need
	// healing.
	heldInitializing bool
}

// readyTimerArmed reports whether r's ReadyTimeoutTimer is set and has not
// fired: from its epoch's spawn (with a readiness probe or the init gate
// on an Envoy epoch) until it is done.
func (m *Machine) readyTimerArmed(r *restart) bool {
	return r.timed && r.pid != 0 && r.failure == ""
}

// queuedRestart is the hot restart that SIGHUPs and reloads asked for while
// another was in progress: they are coalesced into one, started after it.
type queuedRestart struct {
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

	// envoy: the epochs were seen in Envoy's shared memory region (by the
	// init gate), so they bind Envoy's domain sockets: see slotHolder.
	envoy bool
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

// Handle applies ev and returns the actions to perform, in order.
func (m *Machine) Handle(ev Event) []Action {
	if m.phase == exited {
		return nil
	}
	switch ev := ev.(type) {
	case Started:
		return m.beginRestart(nil)
	case Spawned:
		return m.spawned(ev)
	case SpawnFailed:
		acts := []Action{logf(slog.LevelError, "epoch %d: %s", ev.Epoch, ev.Err)}
		if m.keeps(ev.Epoch) {
			acts = append(acts, m.finishRestart(false, "epoch could not be started: "+ev.Err)...)
			return append(acts, m.keep(ev.Epoch)...)
		}
		if m.restart != nil {
			// The abort answers the restart, with this reason: never a READY=1
			// just before STOPPING=1.
			m.restart.failure = "epoch could not be started: " + ev.Err
		}
		return append(acts, m.abort()...)
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
		if r := m.restart; r != nil && r.epoch == ev.Epoch && r.pid != 0 {
			r.notReady = ev.Reason
			return []Action{Log{Level: slog.LevelDebug, Msg: fmt.Sprintf("epoch %d not ready yet: %s", ev.Epoch, ev.Reason), Args: []any{"epoch", ev.Epoch}}}
		}
		return nil
	case InitStarted:
		return m.initStarted(ev.Epoch)
	case InitDone:
		return m.initDone(ev)
	case InitCleared:
		m.counters.InitFlagsCleared++
		return []Action{Log{Level: slog.LevelWarn, Msg: fmt.Sprintf("cleared Envoy's INITIALIZING flag, left set by epoch %d (PID=%d) which died initializing (envoyproxy/envoy#33446)", ev.Epoch, ev.PID),
			Args: []any{"epoch", ev.Epoch, "pid", ev.PID}}}
	case ReloadRequested:
		m.counters.Reloads++
		if m.phase != running {
			return []Action{ReloadResult{Waiter: ev.Waiter, Reason: "shutdown in progress"}}
		}
		return m.requestRestart("reload request", ev.Waiter)
	}
	panic(fmt.Sprintf("supervisor: unknown event %T", ev))
}

// requestRestart starts a hot restart for waiters (none for a SIGHUP), or
// folds the request into the one that follows the restart in progress.
func (m *Machine) requestRestart(what string, waiters ...Waiter) []Action {
	r, c, s := m.restart, m.initializingChild(), m.slotHolder()
	if r == nil && c == nil && s == nil {
		return m.beginRestart(waiters)
	}
	if m.queued == nil {
		m.queued = &queuedRestart{}
	}
	m.queued.waiters = append(m.queued.waiters, waiters...)
	switch {
	case r != nil:
		return []Action{info(fmt.Sprintf("hot restart to epoch %d in progress; %s queued for after it", r.epoch, what))}
	case c != nil:
		return []Action{info(fmt.Sprintf("epoch %d is still initializing; %s queued for after it", c.epoch, what), "epoch", c.epoch)}
	case !m.queued.slotHeld:
		return m.holdForSlot(s)
	}
	return []Action{info(fmt.Sprintf("epoch %d (PID=%d) is still exiting; %s queued for after it", s.epoch, s.pid, what), "epoch", s.epoch, "pid", s.pid)}
}

// slotHolder returns the live epoch whose domain socket ids the next epoch
// would bind, or nil. Envoy names its sockets base_id*10 + epoch%3, so
// epoch N collides with epoch N-3, which was told to terminate when N-1
// started but may still be exiting: N would fail to bind (errno=98). Only
// children known to be Envoy (seen by the init gate) are held: any other
// command binds no such sockets, and an old epoch of it may never exit.
func (m *Machine) slotHolder() *child {
	if m.nextEpoch == 0 || !m.envoy {
		return nil
	}
	for i := range m.children {
		if c := &m.children[i]; c.epoch%3 == m.nextEpoch%3 {
			return c
		}
	}
	return nil
}

// holdForSlot logs, once per hold, that the queued restart waits for s,
// the epoch holding its socket ids, to be reaped.
func (m *Machine) holdForSlot(s *child) []Action {
	m.queued.slotHeld = true
	m.counters.SlotHolds++
	return []Action{info(fmt.Sprintf("holding hot restart to epoch %d: epoch %d (PID=%d) is still exiting", m.nextEpoch, s.epoch, s.pid),
		"epoch", m.nextEpoch, "holder_epoch", s.epoch, "pid", s.pid)}
}

// beginRestart starts epoch nextEpoch: through the pre-restart check when
// one is configured (never for epoch 0), else at once.
func (m *Machine) beginRestart(waiters []Waiter) []Action {
	r := &restart{epoch: m.nextEpoch, waiters: waiters}
	m.restart = r
	var acts []Action
	if r.epoch > 0 {
		m.counters.Restarts++
		acts = append(acts, m.notify(Notify{Reloading: true, Status: fmt.Sprintf("hot restart to epoch %d", r.epoch)})...)
		if m.policy.Check {
			r.checking = true
			return append(acts, info(fmt.Sprintf("checking before hot restart to epoch %d", r.epoch), "epoch", r.epoch), RunCheck{Epoch: r.epoch})
		}
	}
	return append(acts, m.spawn(r)...)
}

func (m *Machine) spawn(r *restart) []Action {
	r.checking = false
	m.nextEpoch++
	return []Action{
		info(fmt.Sprintf("forking and execing new child process at epoch %d", r.epoch), "epoch", r.epoch),
		Spawn{Epoch: r.epoch},
	}
}

func (m *Machine) spawned(ev Spawned) []Action {
	gated := m.policy.InitGate && ev.Envoy
	m.envoy = m.envoy || ev.Envoy
	c := child{pid: ev.PID, epoch: ev.Epoch, started: m.policy.Clock(), ready: !m.policy.Readiness, initializing: gated}
	acts := []Action{info(fmt.Sprintf("forked new child process with PID=%d", ev.PID), "pid", ev.PID, "epoch", ev.Epoch)}
	// Envoy's flag is the new epoch's from now on: an older epoch whose
	// watcher has not seen it set yet (a watcher late on a loaded machine)
	// must not take the new epoch's setting for its own.
	for i := range m.children {
		if !m.children[i].initializing {
			m.children[i].initDone = true
		}
	}
	if m.policy.InitGate {
		acts = append(acts, WatchInit{Epoch: ev.Epoch, PID: ev.PID})
	}
	r := m.restart
	if r == nil || r.epoch != ev.Epoch {
		m.children = append(m.children, c)
		return acts
	}
	r.pid = ev.PID
	if !m.policy.Readiness && !gated {
		m.children = append(m.children, c)
		acts = append(acts, m.finishRestart(true, "")...)
		return append(acts, m.startQueued()...)
	}
	if m.policy.Readiness {
		c.watching = true
		acts = append(acts, WatchReady{Epoch: ev.Epoch, PID: ev.PID})
	}
	m.children = append(m.children, c)
	r.timed = true
	return append(acts, SetTimer{Timer: ReadyTimeoutTimer, After: m.policy.ReadyTimeout})
}

func (m *Machine) checkFinished(ev CheckFinished) []Action {
	r := m.restart
	if r == nil || !r.checking || r.epoch != ev.Epoch || m.phase != running {
		return nil // the restart it was for was abandoned by a shutdown
	}
	if ev.Err == "" {
		return append([]Action{info(fmt.Sprintf("check passed for epoch %d", ev.Epoch), "epoch", ev.Epoch)}, m.spawn(r)...)
	}
	m.counters.ChecksFailed++
	r.checking = false
	acts := []Action{Log{Level: slog.LevelError, Msg: fmt.Sprintf("check refused hot restart to epoch %d: %s", ev.Epoch, ev.Err), Args: []any{"epoch", ev.Epoch}}}
	for _, line := range strings.Split(strings.TrimRight(ev.Output, "\n"), "\n") {
		if line != "" {
			acts = append(acts, Log{Level: slog.LevelError, Msg: "check output: " + line, Args: []any{"epoch", ev.Epoch}})
		}
	}
	acts = append(acts, m.finishRestart(false, "check failed: "+ev.Err)...)
	return append(acts, m.startQueued()...)
}

func (m *Machine) ready(epoch int) []Action {
	i := m.indexOfEpoch(epoch)
	if i < 0 || !m.children[i].watching {
		return nil // from a watch already stopped
	}
	c := &m.children[i]
	c.ready, c.watching = true, false
	return append(m.sendHeldUSR1(i), m.becameLive(i)...)
}

// initStarted: the watcher saw epoch's INITIALIZING flag set, though the
// epoch was not known to be Envoy when it was forked (epoch 0, normally).
func (m *Machine) initStarted(epoch int) []Action {
	i := m.indexOfEpoch(epoch)
	if i < 0 || m.children[i].initializing || m.children[i].initDone {
		return nil
	}
	m.children[i].initializing = true
	m.envoy = true
	return []Action{info(fmt.Sprintf("epoch %d is initializing (Envoy's INITIALIZING flag is set)", epoch), "epoch", epoch)}
}

// initDone: epoch cleared INITIALIZING, or the gate gave up on it (Warning).
func (m *Machine) initDone(ev InitDone) []Action {
	i := m.indexOfEpoch(ev.Epoch)
	if i < 0 || m.children[i].initDone {
		return nil
	}
	c := &m.children[i]
	c.initDone = true
	var acts []Action
	if ev.Warning != "" {
		acts = append(acts, Log{Level: slog.LevelWarn, Msg: fmt.Sprintf("init gate off for epoch %d: %s", ev.Epoch, ev.Warning), Args: []any{"epoch", ev.Epoch}})
	}
	if !c.initializing {
		return append(acts, m.sendHeldUSR1(i)...)
	}
	c.initializing = false
	acts = append(acts, info(fmt.Sprintf("epoch %d finished initializing", ev.Epoch), "epoch", ev.Epoch, "pid", c.pid))
	acts = append(acts, m.sendHeldUSR1(i)...)
	if !c.ready {
		return acts
	}
	acts = append(acts, m.becameLive(i)...)
	return append(acts, m.startQueued()...)
}

// becameLive follows up on child i being ready and done initializing: a
// held SIGUSR1, and the restart that started it.
func (m *Machine) becameLive(i int) []Action {
	c := &m.children[i]
	if !c.live() {
		return nil
	}
	acts := []Action{info(fmt.Sprintf("epoch %d is ready", c.epoch), "epoch", c.epoch, "pid", c.pid)}
	if r := m.restart; r != nil && r.epoch == c.epoch && r.failure == "" {
		acts = append(acts, m.finishRestart(true, "")...)
		acts = append(acts, m.startQueued()...)
	}
	return acts
}

// keeps reports whether a failure of epoch, the new epoch of the restart
// that just failed, leaves the older epochs serving.
func (m *Machine) keeps(epoch int) bool {
	return m.policy.KeepOnFailedRestart && epoch > 0 && m.phase == running && len(m.children) > 0
}

// keep follows a failed restart to epoch under --on-failed-restart keep:
// the older epochs keep serving and the next attempt reuses the number
// (Envoy requires consecutive epochs).
func (m *Machine) keep(epoch int) []Action {
	m.nextEpoch = epoch
	acts := []Action{Log{Level: slog.LevelWarn, Msg: fmt.Sprintf("keeping epoch %d serving; the next hot restart tries epoch %d again", m.children[len(m.children)-1].epoch, epoch),
		Args: []any{"epoch", epoch}}}
	return append(acts, m.startQueued()...)
}

// heal clears the INITIALIZING flag that epoch (process pid), which died
// initializing, may have left set, unless another epoch is starting: then
// the flag is that one's (envoyproxy/envoy#33446).
func (m *Machine) heal(epoch, pid int) []Action {
	if !m.policy.InitGate || m.phase != running || m.initializingChild() != nil || (m.restart != nil && m.restart.pid != 0) {
		return nil
	}
	return []Action{ClearInit{Epoch: epoch, PID: pid}}
}

// initializingChild returns the epoch holding (or about to hold) Envoy's
// INITIALIZING flag, or nil.
func (m *Machine) initializingChild() *child {
	for i := range m.children {
		if m.children[i].initializing {
			return &m.children[i]
		}
	}
	return nil
}

// finishRestart ends the restart in progress (if any) with its outcome:
// it stops its check and ready timeout if they still run, answers its
// waiters and tells the service manager. It does not start a queued
// restart: the caller does, with startQueued, unless it is about to shut
// everything down.
func (m *Machine) finishRestart(ok bool, reason string) []Action {
	r := m.restart
	if r == nil {
		return nil
	}
	m.restart = nil
	var acts []Action
	if r.checking {
		acts = append(acts, StopCheck{Epoch: r.epoch})
	}
	if m.readyTimerArmed(r) {
		acts = append(acts, StopTimer{Timer: ReadyTimeoutTimer})
	}
	result := "ok"
	if !ok {
		result = "failed"
		if r.epoch > 0 {
			m.counters.RestartsFailed++
		}
	}
	m.last = &status.RestartStatus{Epoch: r.epoch, Result: result, Reason: reason, At: m.policy.Clock()}
	for _, w := range r.waiters {
		acts = append(acts, ReloadResult{Waiter: w, OK: ok, Epoch: r.epoch, Reason: reason})
	}
	if m.phase == running {
		if ok {
			acts = append(acts, m.notify(Notify{Ready: true, Status: fmt.Sprintf("epoch %d live (PID=%d)", r.epoch, r.pid)})...)
		} else if r.epoch > 0 {
			acts = append(acts, m.notify(Notify{Ready: true, Status: fmt.Sprintf("hot restart to epoch %d failed: %s", r.epoch, reason)})...)
		}
	}
	return acts
}

// startQueued starts the restart that SIGHUPs or reloads queued during the
// one that just ended, if any. After a refused check it is worth trying
// again: the config may have been fixed meanwhile.
func (m *Machine) startQueued() []Action {
	q := m.queued
	if q == nil || m.restart != nil || m.phase != running || m.initializingChild() != nil {
		return nil
	}
	if s := m.slotHolder(); s != nil {
		if q.slotHeld {
			return nil
		}
		return m.holdForSlot(s)
	}
	m.queued = nil
	return append([]Action{info("starting the queued hot restart")}, m.beginRestart(q.waiters)...)
}

// abandonRestarts fails the restart in progress and the queued one, because
// the restarter is shutting down: every reload still waiting is answered
// with reason, and every readiness watcher is stopped.
func (m *Machine) abandonRestarts(reason string) []Action {
	restartReason := reason
	if r := m.restart; r != nil && r.failure != "" {
		restartReason = r.failure // it failed before the shutdown began
	}
	acts := m.finishRestart(false, restartReason)
	if q := m.queued; q != nil {
		m.queued = nil
		for _, w := range q.waiters {
			acts = append(acts, ReloadResult{Waiter: w, Reason: reason})
		}
	}
	for i := range m.children {
		if c := &m.children[i]; c.watching {
			c.watching = false
			acts = append(acts, StopWatch{Epoch: c.epoch})
		}
	}
	return acts
}

func (m *Machine) signaled(sig Signal) []Action {
	if !sig.IsStop() && sig != SIGHUP && sig != SIGUSR1 {
		// A signal the restarter has no use for (SIGUSR2, SIGPIPE): caught so
		// that its default action cannot kill the restarter and every epoch.
		if m.ignored[sig] {
			return nil
		}
		m.ignored[sig] = true
		return []Action{info(fmt.Sprintf("ignoring %s (logged once)", sig.String()))}
	}
	acts := []Action{info("got " + sig.String())}
	switch sig {
	case SIGHUP:
		m.counters.SIGHUPs++
		if m.phase != running {
			return append(acts, info("ignoring SIGHUP: shutdown in progress"))
		}
		return append(acts, m.requestRestart("SIGHUP")...)
	case SIGUSR1:
		return append(acts, m.forwardUSR1()...)
	case SIGTERM, SIGINT, SIGQUIT:
		switch m.phase {
		case terminating:
			// The operator insists (a second Ctrl-C): do not make them wait.
			return append(acts, m.kill(slog.LevelWarn, fmt.Sprintf("%s during shutdown: force killing all child processes", sig.String()))...)
		case killing:
			return append(acts, info("ignoring "+sig.String()+": shutdown in progress"))
		}
		m.phase = terminating
		for _, pid := range m.held {
			acts = append(acts, info(fmt.Sprintf("PID=%d was stopped by the same signal: part of the shutdown", pid), "pid", pid))
		}
		m.held = nil
		acts = append(acts, m.notify(Notify{Stopping: true, Status: "shutting down"})...)
		acts = append(acts, m.abandonRestarts("shutdown in progress")...)
		acts = append(acts, m.termNewestFirst()...)
		if len(m.children) == 0 {
			return append(acts, m.exit(ExitClean, "all children exited cleanly")...)
		}
		return append(acts, SetTimer{Timer: TermWaitTimer, After: m.policy.TermWait})
	}
	return acts
}

func (m *Machine) exited(ev Exited) []Action {
	i := m.indexOf(ev.PID)
	if i < 0 {
		// Only an orphan reaped as subreaper can get here; it is not an epoch.
		return []Action{logf(slog.LevelDebug, "reaped PID=%d, which is not an epoch", ev.PID)}
	}
	c := m.children[i]
	epoch := c.epoch
	m.children = append(m.children[:i], m.children[i+1:]...)
	var acts []Action
	var how string
	if ev.Signal != 0 {
		how = fmt.Sprintf("was killed with signal=%d", int(ev.Signal))
		acts = append(acts, Log{Level: slog.LevelWarn, Msg: fmt.Sprintf("PID=%d %s", ev.PID, how),
			Args: []any{"pid", ev.PID, "epoch", epoch, "signal", int(ev.Signal), "signal_name", ev.Signal.String()}})
	} else {
		level := slog.LevelInfo
		if ev.Code != 0 {
			level = slog.LevelWarn
		}
		how = fmt.Sprintf("exited with code=%d", ev.Code)
		acts = append(acts, Log{Level: level, Msg: fmt.Sprintf("PID=%d %s", ev.PID, how),
			Args: []any{"pid", ev.PID, "epoch", epoch, "code", ev.Code}})
	}
	if c.watching {
		acts = append(acts, StopWatch{Epoch: epoch})
	}
	clean := ev.Signal == 0 && ev.Code == 0
	hold := m.phase == running && ev.Signal.IsStop()
	failed := false // the new epoch of the restart in progress died before it was ready
	if r := m.restart; r != nil && r.pid == ev.PID {
		failed = true
		reason := r.failure
		if reason == "" {
			reason = fmt.Sprintf("epoch %d %s before it was ready", epoch, how)
		}
		if clean || m.phase != running || (m.keeps(epoch) && !hold) {
			acts = append(acts, m.finishRestart(false, reason)...)
		} else {
			// The abort or the shutdown that follows answers the restart, with
			// this reason: never a READY=1 just before STOPPING=1.
			if m.readyTimerArmed(r) {
				acts = append(acts, StopTimer{Timer: ReadyTimeoutTimer})
			}
			r.failure = reason
		}
	}
	if m.olderHeldBy == ev.PID && len(m.children) > 0 {
		acts = append(acts, StopTimer{Timer: OlderTermTimer})
		acts = append(acts, m.termOlder(fmt.Sprintf("epoch %d (PID=%d) is gone; sending TERM to the older epochs", epoch, ev.PID))...)
	}
	if m.phase == terminating && !clean && !ev.Signal.IsStop() {
		acts = append(acts, m.failedDuringStop(epoch, ev.PID, how)...)
	}
	switch {
	case hold:
		m.held = append(m.held, ev.PID)
		if failed {
			m.restart.heldInitializing = c.initializing
		}
		return append(acts,
			info(fmt.Sprintf("PID=%d was killed by %s, perhaps sent to the whole process group: waiting up to %s for the restarter's own before calling it abnormal",
				ev.PID, ev.Signal.String(), GroupStopGrace), "pid", ev.PID, "epoch", epoch),
			SetTimer{Timer: GroupStopTimer, After: GroupStopGrace})
	case failed && m.keeps(epoch):
		if c.initializing {
			acts = append(acts, m.heal(epoch, ev.PID)...)
		}
		return append(acts, m.keep(epoch)...)
	case m.phase == running && !clean:
		return append(acts, m.abort()...)
	case len(m.children) > 0:
		if c.initializing {
			acts = append(acts, m.heal(epoch, ev.PID)...)
		}
		return append(acts, m.startQueued()...)
	case m.phase == running && len(m.held) > 0:
		return acts // the verdict on the held epochs decides
	case m.phase == running:
		return append(acts, m.exit(ExitClean, "exiting due to lack of child processes")...)
	case m.phase == terminating && m.code != ExitClean:
		return append(acts, m.exit(m.code, "all children exited; "+m.stopFailures)...)
	case m.phase == terminating:
		return append(acts, m.exit(ExitClean, "all children exited cleanly")...)
	default: // killing
		return append(acts, m.exit(m.code, "all children reaped")...)
	}
}

func (m *Machine) timerFired(t Timer) []Action {
	switch {
	case t == TermWaitTimer && m.phase == terminating:
		// The OS layer reaps before delivering a timer, so a child that exited
		// in the wait's last instant is already gone and not reported as killed.
		return m.kill(slog.LevelWarn, fmt.Sprintf("children still running after --term-wait=%s", m.policy.TermWait))
	case t == OlderTermTimer && m.phase == terminating && m.olderHeldBy != 0:
		return m.termOlder(fmt.Sprintf("PID=%d still running after half of --term-wait=%s; sending TERM to the older epochs", m.olderHeldBy, m.policy.TermWait))
	case t == GroupStopTimer && m.phase == running && len(m.held) > 0:
		held := m.held
		m.held = nil
		if r := m.restart; r != nil && len(held) == 1 && held[0] == r.pid && m.keeps(r.epoch) {
			// No stop followed: the new epoch merely failed, and
			// --on-failed-restart keep leaves the older epochs serving.
			epoch, pid := r.epoch, r.pid
			acts := m.finishRestart(false, r.failure)
			if r.heldInitializing {
				acts = append(acts, m.heal(epoch, pid)...)
			}
			return append(acts, m.keep(epoch)...)
		}
		return m.abort()
	case t == KillWaitTimer && m.phase == killing:
		var acts []Action
		for _, c := range m.children {
			acts = append(acts, logf(slog.LevelError, "PID=%d did not exit after SIGKILL; giving up on it", c.pid))
		}
		return append(acts, m.exit(m.code, "")...)
	case t == ReadyTimeoutTimer && m.phase == running && m.restart != nil && m.restart.pid != 0 && m.restart.failure == "":
		// A new epoch that never gets ready counts as failed: it is killed, and
		// its death takes the usual abnormal-exit path.
		r := m.restart
		why := r.notReady
		if i := m.indexOf(r.pid); i >= 0 && m.children[i].initializing {
			why = "Envoy's INITIALIZING flag is still set"
			if r.notReady != "" {
				why += "; " + r.notReady
			}
		} else if why == "" {
			why = "no probe has finished yet"
		}
		r.failure = fmt.Sprintf("epoch %d not ready within --ready-timeout=%s: %s", r.epoch, m.policy.ReadyTimeout, why)
		acts := []Action{Log{Level: slog.LevelError, Msg: r.failure + "; killing it", Args: []any{"epoch", r.epoch, "pid", r.pid}}}
		if i := m.indexOf(r.pid); i >= 0 && m.children[i].watching {
			m.children[i].watching = false
			acts = append(acts, StopWatch{Epoch: r.epoch})
		}
		return append(acts, Kill{PID: r.pid, Signal: SIGKILL})
	}
	return nil // a timer of a phase or restart already left
}

// failedDuringStop records that epoch (process pid) ended abnormally during
// the stop: it exited non-zero or was killed by a signal that is no stop
// signal (the restarter's TERM, or one sent to the whole group). The stop
// goes on, and ends with exit code 1 (hot-restarter.py exits 0 then).
func (m *Machine) failedDuringStop(epoch, pid int, how string) []Action {
	m.code = ExitError
	what := fmt.Sprintf("epoch %d (PID=%d) %s during the stop", epoch, pid, how)
	if m.stopFailures != "" {
		m.stopFailures += "; "
	}
	m.stopFailures += what
	return []Action{Log{Level: slog.LevelError, Msg: what + ": the exit code will be 1", Args: []any{"epoch", epoch, "pid", pid}}}
}

// abort handles an abnormal child exit or a failed spawn: kill everything,
// reap it, exit 1.
func (m *Machine) abort() []Action {
	return m.kill(slog.LevelWarn, "Due to abnormal exit, force killing all child processes and exiting")
}

// kill SIGKILLs every live child and moves to the killing phase, which ends
// with exit code 1.
func (m *Machine) kill(level slog.Level, why string) []Action {
	m.phase = killing
	m.code = ExitError
	acts := []Action{Log{Level: level, Msg: why}}
	if m.olderHeldBy != 0 {
		m.olderHeldBy = 0
		acts = append(acts, StopTimer{Timer: OlderTermTimer})
	}
	acts = append(acts, m.notify(Notify{Stopping: true, Status: "shutting down: " + why})...)
	acts = append(acts, m.abandonRestarts("shutdown in progress: "+why)...)
	acts = append(acts, m.signalAll(SIGKILL, "force killing PID=%d")...)
	if len(m.children) == 0 {
		return append(acts, m.exit(m.code, "")...)
	}
	return append(acts, SetTimer{Timer: KillWaitTimer, After: KillWait})
}

// forwardUSR1 sends SIGUSR1 to every epoch that can take it. An epoch
// still starting may not have installed its handler yet, and SIGUSR1's
// default action would kill it: it gets the signal once it can take it
// (takesUSR1), once however many came meanwhile.
func (m *Machine) forwardUSR1() []Action {
	var acts []Action
	for i := range m.children {
		c := &m.children[i]
		if !m.takesUSR1(c) {
			c.usr1 = true
			acts = append(acts, info(fmt.Sprintf("deferring SIGUSR1 to PID=%d until epoch %d is ready", c.pid, c.epoch), "pid", c.pid, "epoch", c.epoch))
			continue
		}
		acts = append(acts, info(fmt.Sprintf("sending SIGUSR1 to PID=%d", c.pid), "pid", c.pid, "epoch", c.epoch), Kill{PID: c.pid, Signal: SIGUSR1})
	}
	return acts
}

// termNewestFirst starts a stop: TERM to the newest epoch only. Envoy's
// shutdown sends its parent a Terminate unless the parent-shutdown time has
// passed; a parent TERMed at the same moment may be gone by then, and the
// newest epoch then retries ECONNREFUSED for ten seconds and aborts. The
// older epochs get their TERM once the newest is reaped (its shutdown
// terminated its parent; a grandparent was told to terminate when the
// newest started), or after half of --term-wait, so that a stuck newest
// epoch does not cost them their clean exit.
func (m *Machine) termNewestFirst() []Action {
	n := len(m.children)
	if n == 0 {
		return nil
	}
	newest := m.children[n-1]
	acts := signalChild(newest, SIGTERM, termFormat)
	if n == 1 {
		return acts
	}
	m.olderHeldBy = newest.pid
	return append(acts,
		info(fmt.Sprintf("holding TERM to the older epochs until epoch %d (PID=%d) exits, at most %s", newest.epoch, newest.pid, m.policy.TermWait/2), "epoch", newest.epoch, "pid", newest.pid),
		SetTimer{Timer: OlderTermTimer, After: m.policy.TermWait / 2})
}

// termOlder sends the TERM that termNewestFirst held to every epoch but
// the newest, if it still runs.
func (m *Machine) termOlder(why string) []Action {
	newest := m.olderHeldBy
	m.olderHeldBy = 0
	var acts []Action
	for _, c := range m.children {
		if c.pid != newest {
			acts = append(acts, signalChild(c, SIGTERM, termFormat)...)
		}
	}
	if len(acts) == 0 {
		return nil
	}
	return append([]Action{info(why)}, acts...)
}

func (m *Machine) signalAll(sig Signal, format string) []Action {
	var acts []Action
	for _, c := range m.children {
		acts = append(acts, signalChild(c, sig, format)...)
	}
	return acts
}

// termFormat is hot-restarter.py's line for each TERM sent.
const termFormat = "sending TERM to PID=%d"

// signalChild sends sig to c, logged with format (of c's pid).
func signalChild(c child, sig Signal, format string) []Action {
	return []Action{info(fmt.Sprintf(format, c.pid), "pid", c.pid, "epoch", c.epoch), Kill{PID: c.pid, Signal: sig}}
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
