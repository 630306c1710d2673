package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/envoy-restarter/restarter/internal/procfs"
	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/control"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// runner is the event loop: the one goroutine that owns the Machine, turns
// signals, reaped children, timers, helper outcomes and control requests
// into events, and performs the actions through sys.
type runner struct {
	cfg     config.Config
	log     *slog.Logger
	sys     osEnv
	machine *machine.Machine
	signals signals
	timers  map[machine.Timer]func() bool // stops each armed timer
	gen     map[machine.Timer]int         // the generation of each timer; older firings are dropped
	fired   chan timerFiring
	async   chan outcome               // outcomes of checks and readiness probes
	check   context.CancelFunc         // stops the check in progress
	watches map[int]context.CancelFunc // stops each epoch's readiness watcher
	ctx     context.Context
	cancel  context.CancelFunc // stops checks and probes still running
	control *control.Server
	// waiters are where the answers to the reload requests the machine holds
	// go, by the Waiter it was given.
	waiters    map[machine.Waiter]chan<- control.Reply
	lastWaiter machine.Waiter
	baseID     string    // epoch 0's base id, read from --base-id-path
	gate       *initGate // Envoy's INITIALIZING flag; nil with --init-gate off
	// initWatches stops the INITIALIZING watch of each epoch, by pid.
	initWatches map[int]context.CancelFunc
	// lastSpawn is the last epoch forked; Envoy says it is held as
	// initializing from its fork (its watcher need not report InitStarted).
	lastSpawn machine.Spawned
	pidFile   *pidFile
	// instance marks every process the restarter starts (instanceEnv).
	instance string

	// Memory release (scheduleRelease): due once a hot restart forked since
	// the last one; the armed timer fires on released.
	releaseDue   bool
	releaseTimer func() bool // stops the armed release timer; nil when none is armed
	released     chan struct{}
	lastRelease  time.Time
}

// outcome is the event a check or readiness watcher reports, with the
// context it ran under: once that is cancelled (StopCheck, StopWatch), the
// event is stale and dropped.
type outcome struct {
	ev  machine.Event
	ctx context.Context
}

// signals are the channels of the signals the restarter handles.
type signals struct {
	chld, hup, usr1, term, intr, quit <-chan os.Signal
	// Caught to be ignored: SIGUSR2's default action would kill the
	// restarter, and SIGPIPE's would when a log reader goes away (Go raises
	// it for a write to stdout or stderr that fails with EPIPE, even when the
	// restarter was started with SIGPIPE ignored). A caught signal, unlike an
	// ignored one, is reset to its default in the children at exec.
	usr2, pipe <-chan os.Signal
}

type timerFiring struct {
	timer machine.Timer
	gen   int
}

// Run supervises cfg.Command until the restarter should exit, and returns
// the exit code. It catches SIGHUP, SIGUSR1, SIGTERM, SIGINT and SIGCHLD
// for the rest of the process's life (the caller is expected to exit with
// the code). Every child it started has been reaped by then (unless one
// survived SIGKILL for KillWait, which is logged), and its control socket
// and pid file are removed.
func Run(cfg config.Config, log *slog.Logger) int {
	return newRunner(cfg, log, newOSEnv()).run()
}

// newRunner returns the event loop for cfg over sys. The signal handlers
// are installed at once and never removed: between Run's return and the
// process's exit, a late SIGHUP or SIGTERM must not kill the restarter by
// its default action and replace the exit code with "killed by signal".
func newRunner(cfg config.Config, log *slog.Logger, sys osEnv) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	var gate *initGate
	if cfg.InitGate == config.InitGateAuto {
		gate = &initGate{discoverFor: cfg.ReadyTimeout}
	}
	return &runner{
		gate:        gate,
		initWatches: map[int]context.CancelFunc{},
		cfg:         cfg,
		log:         log,
		sys:         sys,
		machine: machine.New(machine.Policy{
			TermWait:            cfg.TermWait,
			Check:               len(cfg.Check) > 0 || cfg.BaseIDPath != "",
			Readiness:           cfg.Readiness(),
			ReadyTimeout:        cfg.ReadyTimeout,
			Notify:              sys.getenv("NOTIFY_SOCKET") != "",
			InitGate:            cfg.InitGate == config.InitGateAuto,
			KeepOnFailedRestart: cfg.OnFailedRestart == config.FailedRestartKeep,
		}),
		signals: signals{
			chld: sys.notifySignal(syscall.SIGCHLD),
			hup:  sys.notifySignal(syscall.SIGHUP),
			usr1: sys.notifySignal(syscall.SIGUSR1),
			term: sys.notifySignal(syscall.SIGTERM),
			intr: sys.notifySignal(syscall.SIGINT),
			quit: sys.notifySignal(syscall.SIGQUIT),
			usr2: sys.notifySignal(syscall.SIGUSR2),
			pipe: sys.notifySignal(syscall.SIGPIPE),
		},
		timers:   map[machine.Timer]func() bool{},
		gen:      map[machine.Timer]int{},
		fired:    make(chan timerFiring, 4),
		released: make(chan struct{}, 1),
		async:    make(chan outcome, 16),
		watches:  map[int]context.CancelFunc{},
		waiters:  map[machine.Waiter]chan<- control.Reply{},
		ctx:      ctx,
		cancel:   cancel,
		instance: instanceID(cfg),
	}
}

// run is the event loop; it returns the exit code.
func (r *runner) run() int {
	defer r.cancel()
	defer r.stopTimers()

	r.logStart()
	if code, ok := r.setUp(); !ok {
		return code
	}
	defer r.tearDown()

	events := []machine.Event{machine.Started{}}
	for {
		if code, done := r.handle(events); done {
			r.stopLeftBehind()
			return code
		}
		events = r.next()
	}
}

// next waits for what happens next and returns it as events, nil when it
// was stale (a stopped timer, check or watch). Exits are always collected
// first, so the machine sees a child's death before a signal, timer or
// request that arrived at the same moment.
func (r *runner) next() []machine.Event {
	var calls <-chan control.Call // nil (never ready) without a control socket
	if r.control != nil {
		calls = r.control.Calls()
	}
	sig := r.signals
	select {
	case <-sig.chld:
		return r.reap()
	case <-sig.hup:
		return append(r.reapAndLookAtInit(), machine.Signaled{Signal: machine.SIGHUP})
	case <-sig.usr1:
		return append(r.reap(), machine.Signaled{Signal: machine.SIGUSR1})
	case <-sig.term:
		return append(r.reap(), machine.Signaled{Signal: machine.SIGTERM})
	case <-sig.intr:
		return append(r.reap(), machine.Signaled{Signal: machine.SIGINT})
	case <-sig.quit:
		return append(r.reap(), machine.Signaled{Signal: machine.SIGQUIT})
	case <-sig.usr2:
		return []machine.Event{machine.Signaled{Signal: machine.SIGUSR2}}
	case <-sig.pipe:
		return []machine.Event{machine.Signaled{Signal: machine.SIGPIPE}}
	case o := <-r.async:
		if o.ctx.Err() != nil {
			return nil // its check or watch was stopped
		}
		r.finished(o.ev)
		return append(r.reap(), o.ev)
	case c := <-calls:
		return append(r.reapAndLookAtInit(), r.controlCall(c)...)
	case f := <-r.fired:
		if f.gen != r.gen[f.timer] {
			return nil // stopped or set again since
		}
		return append(r.reap(), machine.TimerFired{Timer: f.timer})
	case <-r.released:
		r.releaseTimer = nil
		r.releaseMemory()
		return nil
	}
}

// logStart logs hot-restarter.py's first line.
func (r *runner) logStart() {
	r.log.Info("starting hot-restarter with target: "+r.cfg.Command, "target", r.cfg.Command, "path", r.cfg.Path, "version", config.Version())
}

// setUp does what must happen before epoch 0: subreaper, pid file (taken
// first, written last), processes of an earlier run, the stale base id
// file, control socket. On failure it has undone what it did and returns
// the exit code.
func (r *runner) setUp() (int, bool) {
	if r.cfg.Subreaper || r.sys.getpid() == 1 {
		if err := r.sys.becomeSubreaper(); err != nil {
			r.log.Error(err.Error())
			return machine.ExitError, false
		}
		r.cfg.Subreaper = true
		if err := procfs.CheckOwn(); err != nil {
			r.log.Warn("subreaper: " + err.Error() + ": orphans are reaped, but not found and stopped at exit")
		}
	}
	fail := func(err error) (int, bool) {
		r.log.Error(err.Error())
		r.tearDown()
		var usage *config.UsageError
		if errors.As(err, &usage) {
			return machine.ExitUsage, false
		}
		return machine.ExitError, false
	}
	if r.cfg.PIDFile != "" {
		p, err := takePIDFile(r.cfg.PIDFile)
		if err != nil {
			return fail(err)
		}
		r.pidFile = p
	}
	if err := checkLeftovers(r.sys.leftovers, r.instance, func(msg string) { r.log.Warn(msg) }); err != nil {
		return fail(err)
	}
	if r.cfg.BaseIDPath != "" {
		if err := clearBaseID(r.cfg.BaseIDPath); err != nil {
			return fail(err)
		}
	}
	if r.cfg.ControlSocket != "" {
		s, err := control.Listen(r.cfg.ControlSocket, func(msg string) { r.log.Warn(msg) })
		if err != nil {
			return fail(err)
		}
		r.control = s
	}
	if r.pidFile != nil {
		// Only now: a restarter that failed to set up never claimed the file.
		if err := r.pidFile.write(r.sys.getpid()); err != nil {
			return fail(err)
		}
	}
	return 0, true
}

func (r *runner) tearDown() {
	r.sys.killHelpers()
	if r.control != nil {
		r.control.Close()
	}
	if r.pidFile != nil {
		r.pidFile.release(r.sys.getpid())
	}
}

// leftBehindPoll is how often stopLeftBehind looks again for processes
// that are not the restarter's children (no SIGCHLD tells of their end).
const leftBehindPoll = 20 * time.Millisecond

// stopLeftBehind stops what still runs once the epochs are gone: what a
// start script left in the background (a log shipper, a sleep: in the
// restarter's process group, with its mark), and, as subreaper, the orphans
// adopted from anywhere below. It TERMs them, KILLs those left after --term-wait, and waits at
// most KillWait more. Nothing the restarter started outlives it: a
// leftover holding no Envoy state does not block the next start either,
// but it would pile up, run after run.
func (r *runner) stopLeftBehind() {
	pids := r.leftBehind()
	if len(pids) == 0 {
		return
	}
	r.log.Info(fmt.Sprintf("sending TERM to %d process(es) left behind by the epochs: PIDs %v", len(pids), pids))
	for _, pid := range pids {
		r.sys.kill(pid, syscall.SIGTERM)
	}
	wait := make(chan struct{}, 1)
	stop := r.sys.afterFunc(r.cfg.TermWait, func() { wait <- struct{}{} })
	defer func() { stop() }()
	killed := false
	for {
		if r.cfg.Subreaper {
			r.sys.reapOrphans()
		}
		left := r.leftBehind()
		if len(left) == 0 {
			return
		}
		poll := make(chan struct{}, 1)
		stopPoll := r.sys.afterFunc(leftBehindPoll, func() { poll <- struct{}{} })
		select {
		case <-r.signals.chld:
		case <-poll:
		case <-wait:
			if killed {
				stopPoll()
				r.log.Error(fmt.Sprintf("PIDs %v left behind did not exit after SIGKILL; giving up on them", left))
				return
			}
			r.log.Warn(fmt.Sprintf("PIDs %v left behind still running after --term-wait=%s; force killing them", left, r.cfg.TermWait))
			for _, pid := range left {
				r.sys.kill(pid, syscall.SIGKILL)
			}
			killed = true
			stop = r.sys.afterFunc(machine.KillWait, func() { wait <- struct{}{} })
		}
		stopPoll()
	}
}

// leftBehind lists the live processes stopLeftBehind stops: those of the
// restarter's process group that carry its instance mark, and, as
// subreaper, the orphans; epochs that survived SIGKILL aside.
func (r *runner) leftBehind() []int {
	epochs := r.machine.PIDs()
	var pids []int
	if r.cfg.Subreaper {
		pids = r.sys.orphans(epochs)
	}
	for _, pid := range r.sys.groupMembers(r.instance) {
		if !slices.Contains(pids, pid) && !slices.Contains(epochs, pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// handle feeds events to the machine and performs its actions; a Spawn's
// outcome is fed back before anything else. It reports the exit code once
// the machine asks to exit.
func (r *runner) handle(events []machine.Event) (code int, done bool) {
	for len(events) > 0 {
		ev := events[0]
		events = events[1:]
		for _, a := range r.machine.Handle(ev) {
			switch a := a.(type) {
			case machine.Log:
				r.log.Log(context.Background(), a.Level, a.Msg, a.Args...)
			case machine.Spawn:
				events = append([]machine.Event{r.spawn(a.Epoch)}, events...)
				// Its garbage is handed back once the restarter is quiet again.
				r.releaseDue = r.releaseDue || a.Epoch > 0
			case machine.Kill:
				if err := r.sys.kill(a.PID, syscall.Signal(a.Signal)); err != nil {
					r.log.Error(err.Error())
				}
			case machine.SetTimer:
				r.setTimer(a.Timer, a.After)
			case machine.StopTimer:
				r.stopTimer(a.Timer)
			case machine.RunCheck:
				if ev, ok := r.startCheck(a.Epoch); !ok {
					events = append([]machine.Event{ev}, events...)
				}
			case machine.StopCheck:
				r.stopCheck()
			case machine.WatchReady:
				r.startWatch(a.Epoch, a.PID)
			case machine.StopWatch:
				r.stopWatch(a.Epoch)
			case machine.WatchInit:
				ctx, cancel := context.WithCancel(r.ctx)
				r.initWatches[a.PID] = cancel
				gated := r.lastSpawn.PID == a.PID && r.lastSpawn.Envoy
				go r.gate.watchInit(ctx, a.Epoch, a.PID, gated, func(ev machine.Event) { r.report(ctx, ev) })
			case machine.ClearInit:
				if r.gate.clearInit() {
					events = append([]machine.Event{machine.InitCleared(a)}, events...)
				}
			case machine.Notify:
				r.notify(a)
			case machine.ReloadResult:
				epoch := a.Epoch
				reply := control.Reply{OK: a.OK, Error: a.Reason, Epoch: &epoch}
				if a.Restart.ID != 0 {
					reply.Restart = &a.Restart
				}
				r.waiters[a.Waiter] <- reply // buffered: never blocks
				delete(r.waiters, a.Waiter)
			case machine.Exit:
				return a.Code, true
			}
		}
	}
	r.settled()
	return 0, false
}

// settled follows up on the machine's state once a batch of events is
// handled: the init gate hurries while a hot restart is queued, and memory
// is released once no restart is under way.
func (r *runner) settled() {
	inProgress, queued := r.machine.RestartPending()
	if r.gate != nil {
		r.gate.setQueued(queued)
	}
	r.scheduleRelease(inProgress || queued)
}

func (r *runner) spawn(epoch int) machine.Event {
	pid, err := r.sys.start(r.cfg.Path, append([]string{r.cfg.Command}, r.cfg.Args...), r.childEnv(epoch), r.cfg.Dir)
	if err != nil {
		return machine.SpawnFailed{Epoch: epoch, Err: err.Error()}
	}
	r.lastSpawn = machine.Spawned{Epoch: epoch, PID: pid, Envoy: r.gate != nil && r.gate.known()}
	return r.lastSpawn
}

func (r *runner) controlCall(c control.Call) []machine.Event {
	if c.Command == "status" {
		s := r.machine.Status()
		c.Reply <- control.Reply{OK: true, Status: &s}
		return nil
	}
	r.lastWaiter++
	r.waiters[r.lastWaiter] = c.Reply
	return []machine.Event{machine.ReloadRequested{Waiter: r.lastWaiter}}
}

// finished releases the check or watch that reported ev.
func (r *runner) finished(ev machine.Event) {
	switch ev := ev.(type) {
	case machine.CheckFinished:
		r.stopCheck()
	case machine.Ready:
		r.stopWatch(ev.Epoch)
	}
}

// stopCheck cancels the check in progress, if any: its process is killed
// and its outcome dropped.
func (r *runner) stopCheck() {
	if r.check != nil {
		r.check()
		r.check = nil
	}
}

// stopWatch cancels epoch's readiness watcher, if any; its outcome is
// dropped.
func (r *runner) stopWatch(epoch int) {
	if stop := r.watches[epoch]; stop != nil {
		stop()
		delete(r.watches, epoch)
	}
}

// report hands the outcome of work running under ctx to the event loop,
// unless the loop has stopped.
func (r *runner) report(ctx context.Context, ev machine.Event) {
	select {
	case r.async <- outcome{ev: ev, ctx: ctx}:
	case <-r.ctx.Done():
	}
}

// reapAndLookAtInit reaps, then, before a hot restart request, looks at
// the newest epoch's INITIALIZING flag at once: its watcher may not have
// found the region yet (epoch 0, in its first moments).
func (r *runner) reapAndLookAtInit() []machine.Event {
	events := r.reap()
	if r.gate == nil {
		return events
	}
	if epoch, pid, ok := r.machine.Newest(); ok && r.gate.initializingNow(pid) {
		events = append(events, machine.InitStarted{Epoch: epoch})
	}
	return events
}

// reap collects the exits of epochs and, as subreaper, of orphans.
func (r *runner) reap() []machine.Event {
	var events []machine.Event
	for _, ev := range r.sys.reap(r.machine.PIDs()) {
		if stop := r.initWatches[ev.PID]; stop != nil {
			stop() // the epoch is gone: so is its INITIALIZING watch
			delete(r.initWatches, ev.PID)
		}
		events = append(events, ev)
	}
	if r.cfg.Subreaper {
		for _, ev := range r.sys.reapOrphans() {
			events = append(events, ev)
		}
	}
	return events
}

func (r *runner) setTimer(t machine.Timer, after time.Duration) {
	if stop := r.timers[t]; stop != nil {
		stop()
	}
	r.gen[t]++
	f := timerFiring{timer: t, gen: r.gen[t]}
	r.timers[t] = r.sys.afterFunc(after, func() {
		select {
		case r.fired <- f:
		case <-r.ctx.Done(): // the loop has stopped
		}
	})
}

func (r *runner) stopTimer(t machine.Timer) {
	if stop := r.timers[t]; stop != nil {
		stop()
		delete(r.timers, t)
	}
	r.gen[t]++ // a firing already on its way is dropped
}

func (r *runner) stopTimers() {
	for _, stop := range r.timers {
		stop()
	}
	if r.releaseTimer != nil {
		r.releaseTimer()
	}
}

// Memory a hot restart leaves behind (the fork's argv and environment, log
// lines, the init gate's reads) is garbage once it is done, and the Go
// runtime hands free pages back to the kernel only slowly, so resident
// memory would creep up restart by restart. Handing it back is a full
// collection and a page-fault for every page touched again afterwards
// (a few ms of CPU): never between a signal and the exec it asks for, and
// at most once every releaseEvery however often the restarter is hot
// restarted.
const (
	releaseQuiet = time.Second     // after a hot restart is done, before its memory is handed back
	releaseEvery = 5 * time.Second // at most one release in this long
)

// scheduleRelease arms the memory release when one is due and no hot
// restart is under way (busy): releaseQuiet from now, and no sooner than
// releaseEvery after the last one.
func (r *runner) scheduleRelease(busy bool) {
	if !r.releaseDue || busy || r.releaseTimer != nil {
		return
	}
	delay := max(releaseQuiet, time.Until(r.lastRelease.Add(releaseEvery)))
	r.releaseTimer = r.sys.afterFunc(delay, func() {
		select {
		case r.released <- struct{}{}:
		case <-r.ctx.Done():
		}
	})
}

// releaseMemory hands free memory back to the kernel, unless a hot restart
// began since the release was armed: then it waits for that one to be done
// (settled arms it again). It runs beside the event loop, which a signal
// arriving meanwhile must not wait for.
func (r *runner) releaseMemory() {
	if inProgress, queued := r.machine.RestartPending(); inProgress || queued {
		return
	}
	r.releaseDue = false
	r.lastRelease = time.Now()
	go r.sys.releaseMemory()
}
