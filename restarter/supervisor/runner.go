package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"
)

// runner is the event loop: the one goroutine that owns the Machine, turns
// signals, reaped children, timers, helper outcomes and control requests
// into events, and performs the actions through sys.
type runner struct {
	cfg     Config
	log     *slog.Logger
	sys     osEnv
	machine *Machine
	signals signals
	timers  map[Timer]func() bool // stops each armed timer
	gen     map[Timer]int         // the generation of each timer; older firings are dropped
	fired   chan timerFiring
	async   chan outcome               // outcomes of checks and readiness probes
	check   context.CancelFunc         // stops the check in progress
	watches map[int]context.CancelFunc // stops each epoch's readiness watcher
	ctx     context.Context
	cancel  context.CancelFunc // stops checks and probes still running
	control *controlServer
	baseID  string    // epoch 0's base id, read from --base-id-path
	gate    *initGate // Envoy's INITIALIZING flag; nil with --init-gate off
	// initWatches stops the INITIALIZING watch of each epoch, by pid.
	initWatches map[int]context.CancelFunc
	// lastSpawn is the last epoch forked; Envoy says it is held as
	// initializing from its fork (its watcher need not report InitStarted).
	lastSpawn Spawned
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
	ev  Event
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
	timer Timer
	gen   int
}

// Run supervises cfg.Command until the restarter should exit, and returns
// the exit code. It catches SIGHUP, SIGUSR1, SIGTERM, SIGINT and SIGCHLD
// for the rest of the process's life (the caller is expected to exit with
// the code). Every child it started has been reaped by then (unless one
// survived SIGKILL for KillWait, which is logged), and its control socket
// and pid file are removed.
func Run(cfg Config, log *slog.Logger) int {
	return newRunner(cfg, log, newOSEnv()).run()
}

// newRunner returns the event loop for cfg over sys. The signal handlers
// are installed at once and never removed: between Run's return and the
// process's exit, a late SIGHUP or SIGTERM must not kill the restarter by
// its default action and replace the exit code with "killed by signal".
func newRunner(cfg Config, log *slog.Logger, sys osEnv) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	var gate *initGate
	if cfg.InitGate == "auto" {
		gate = &initGate{discoverFor: cfg.ReadyTimeout}
	}
	return &runner{
		gate:        gate,
		initWatches: map[int]context.CancelFunc{},
		cfg:         cfg,
		log:         log,
		sys:         sys,
		machine: NewMachine(Policy{
			TermWait:            cfg.TermWait,
			Check:               len(cfg.Check) > 0 || cfg.BaseIDPath != "",
			Readiness:           cfg.readiness(),
			ReadyTimeout:        cfg.ReadyTimeout,
			Notify:              sys.getenv("NOTIFY_SOCKET") != "",
			InitGate:            cfg.InitGate == "auto",
			KeepOnFailedRestart: cfg.OnFailedRestart == "keep",
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
		timers:   map[Timer]func() bool{},
		gen:      map[Timer]int{},
		fired:    make(chan timerFiring, 4),
		released: make(chan struct{}, 1),
		async:    make(chan outcome, 16),
		watches:  map[int]context.CancelFunc{},
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

	events := []Event{Started{}}
	for {
		if code, done := r.handle(events); done {
			if r.cfg.Subreaper {
				r.stopOrphans()
			}
			return code
		}
		events = r.next()
	}
}

// next waits for what happens next and returns it as events, nil when it
// was stale (a stopped timer, check or watch). Exits are always collected
// first, so the machine sees a child's death before a signal, timer or
// request that arrived at the same moment.
func (r *runner) next() []Event {
	var calls chan controlCall // nil (never ready) without a control socket
	if r.control != nil {
		calls = r.control.calls
	}
	sig := r.signals
	select {
	case <-sig.chld:
		return r.reap()
	case <-sig.hup:
		return append(r.reapAndLookAtInit(), Signaled{Signal: syscall.SIGHUP})
	case <-sig.usr1:
		return append(r.reap(), Signaled{Signal: syscall.SIGUSR1})
	case <-sig.term:
		return append(r.reap(), Signaled{Signal: syscall.SIGTERM})
	case <-sig.intr:
		return append(r.reap(), Signaled{Signal: syscall.SIGINT})
	case <-sig.quit:
		return append(r.reap(), Signaled{Signal: syscall.SIGQUIT})
	case <-sig.usr2:
		return []Event{Signaled{Signal: syscall.SIGUSR2}}
	case <-sig.pipe:
		return []Event{Signaled{Signal: syscall.SIGPIPE}}
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
		return append(r.reap(), TimerFired{Timer: f.timer})
	case <-r.released:
		r.releaseTimer = nil
		r.releaseMemory()
		return nil
	}
}

// logStart logs hot-restarter.py's first line.
func (r *runner) logStart() {
	r.log.Info("starting hot-restarter with target: "+r.cfg.Command, "target", r.cfg.Command, "path", r.cfg.Path, "version", version())
}

// setUp does what must happen before epoch 0: subreaper, pid file (taken
// first, written last), processes of an earlier run, the stale base id
// file, control socket. On failure it has undone what it did and returns
// the exit code.
func (r *runner) setUp() (int, bool) {
	if r.cfg.Subreaper || r.sys.getpid() == 1 {
		if err := r.sys.becomeSubreaper(); err != nil {
			r.log.Error(err.Error())
			return ExitError, false
		}
		r.cfg.Subreaper = true
		if err := checkOwnProc(); err != nil {
			r.log.Warn("subreaper: " + err.Error() + ": orphans are reaped, but not found and stopped at exit")
		}
	}
	fail := func(err error) (int, bool) {
		r.log.Error(err.Error())
		r.tearDown()
		var usage *UsageError
		if errors.As(err, &usage) {
			return ExitUsage, false
		}
		return ExitError, false
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
		s, err := listenControl(r.cfg.ControlSocket, func(msg string) { r.log.Warn(msg) })
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
		r.control.close()
	}
	if r.pidFile != nil {
		r.pidFile.release(r.sys.getpid())
	}
}

// stopOrphans TERMs the processes adopted as subreaper that still run once
// the epochs are gone, KILLs those left after --term-wait, and reaps them
// (waiting at most KillWait more). A subreaper that exits would hand them
// on to PID 1, or, as PID 1, to the kernel's teardown of the container.
func (r *runner) stopOrphans() {
	pids := r.sys.orphans(r.machine.PIDs())
	if len(pids) == 0 {
		return
	}
	r.log.Info(fmt.Sprintf("sending TERM to %d orphaned process(es) adopted as subreaper: PIDs %v", len(pids), pids))
	for _, pid := range pids {
		r.sys.kill(pid, syscall.SIGTERM)
	}
	wait := make(chan struct{}, 1)
	stop := r.sys.afterFunc(r.cfg.TermWait, func() { wait <- struct{}{} })
	defer func() { stop() }()
	killed := false
	for {
		r.sys.reapOrphans()
		left := r.sys.orphans(r.machine.PIDs())
		if len(left) == 0 {
			return
		}
		select {
		case <-r.signals.chld:
		case <-wait:
			if killed {
				r.log.Error(fmt.Sprintf("orphaned PIDs %v did not exit after SIGKILL; giving up on them", left))
				return
			}
			r.log.Warn(fmt.Sprintf("orphaned PIDs %v still running after --term-wait=%s; force killing them", left, r.cfg.TermWait))
			for _, pid := range left {
				r.sys.kill(pid, syscall.SIGKILL)
			}
			killed = true
			stop = r.sys.afterFunc(KillWait, func() { wait <- struct{}{} })
		}
	}
}

// handle feeds events to the machine and performs its actions; a Spawn's
// outcome is fed back before anything else. It reports the exit code once
// the machine asks to exit.
func (r *runner) handle(events []Event) (code int, done bool) {
	for len(events) > 0 {
		ev := events[0]
		events = events[1:]
		for _, a := range r.machine.Handle(ev) {
			switch a := a.(type) {
			case Log:
				r.log.Log(context.Background(), a.Level, a.Msg, a.Args...)
			case Spawn:
				events = append([]Event{r.spawn(a.Epoch)}, events...)
				// Its garbage is handed back once the restarter is quiet again.
				r.releaseDue = r.releaseDue || a.Epoch > 0
			case Kill:
				if err := r.sys.kill(a.PID, a.Signal); err != nil {
					r.log.Error(err.Error())
				}
			case SetTimer:
				r.setTimer(a.Timer, a.After)
			case StopTimer:
				r.stopTimer(a.Timer)
			case RunCheck:
				if ev, ok := r.startCheck(a.Epoch); !ok {
					events = append([]Event{ev}, events...)
				}
			case StopCheck:
				r.stopCheck()
			case WatchReady:
				r.startWatch(a.Epoch, a.PID)
			case StopWatch:
				r.stopWatch(a.Epoch)
			case WatchInit:
				ctx, cancel := context.WithCancel(r.ctx)
				r.initWatches[a.PID] = cancel
				gated := r.lastSpawn.PID == a.PID && r.lastSpawn.Envoy
				go r.gate.watchInit(ctx, a.Epoch, a.PID, gated, func(ev Event) { r.report(ctx, ev) })
			case ClearInit:
				if r.gate.clearInit() {
					events = append([]Event{InitCleared(a)}, events...)
				}
			case Notify:
				r.notify(a)
			case ReloadResult:
				epoch := a.Epoch
				a.Waiter <- controlReply{OK: a.OK, Error: a.Reason, Epoch: &epoch} // buffered: never blocks
			case Exit:
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

func (r *runner) spawn(epoch int) Event {
	pid, err := r.sys.start(r.cfg.Path, append([]string{r.cfg.Command}, r.cfg.Args...), r.childEnv(epoch), r.cfg.Dir)
	if err != nil {
		return SpawnFailed{Epoch: epoch, Err: err.Error()}
	}
	r.lastSpawn = Spawned{Epoch: epoch, PID: pid, Envoy: r.gate != nil && r.gate.known()}
	return r.lastSpawn
}

func (r *runner) controlCall(c controlCall) []Event {
	if c.command == "status" {
		s := r.machine.Status()
		c.reply <- controlReply{OK: true, Status: &s}
		return nil
	}
	return []Event{ReloadRequested{Waiter: c.reply}}
}

// finished releases the check or watch that reported ev.
func (r *runner) finished(ev Event) {
	switch ev := ev.(type) {
	case CheckFinished:
		r.stopCheck()
	case Ready:
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
func (r *runner) report(ctx context.Context, ev Event) {
	select {
	case r.async <- outcome{ev: ev, ctx: ctx}:
	case <-r.ctx.Done():
	}
}

// reapAndLookAtInit reaps, then, before a hot restart request, looks at
// the newest epoch's INITIALIZING flag at once: its watcher may not have
// found the region yet (epoch 0, in its first moments).
func (r *runner) reapAndLookAtInit() []Event {
	events := r.reap()
	if r.gate == nil {
		return events
	}
	if epoch, pid, ok := r.machine.Newest(); ok && r.gate.initializingNow(pid) {
		events = append(events, InitStarted{Epoch: epoch})
	}
	return events
}

// reap collects the exits of epochs and, as subreaper, of orphans.
func (r *runner) reap() []Event {
	var events []Event
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

func (r *runner) setTimer(t Timer, after time.Duration) {
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

func (r *runner) stopTimer(t Timer) {
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
