package supervisor

import (
	"context"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/control"
	"github.com/envoy-restarter/restarter/restarter/internal/metrics"
	"github.com/envoy-restarter/restarter/restarter/internal/osproc"
	"github.com/envoy-restarter/restarter/restarter/internal/relay"
	"github.com/envoy-restarter/restarter/restarter/internal/watch"

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
	async   chan outcome // outcomes of checks and readiness probes
	tasks   tasks        // the check, readiness and INITIALIZING watches under way
	ctx     context.Context
	cancel  context.CancelFunc // stops checks and probes still running
	control *control.Server
	watcher watcher // the config watch; nil without --watch
	// guardInert: no memory limit was found at start; the guard reads nothing.
	guardInert bool
	// The log relays (nil without --log-relay) and each epoch's outputs.
	relayOut, relayErr *relay.Relay
	outputs            map[int]outputs
	// What the metrics keep beyond the machine's status.
	started, lastRestart time.Time
	durations            metrics.Histogram
	lastMetrics          []byte // what the metrics file holds
	// waiters are where the answers to the reload requests the machine holds
	// go, by the Waiter it was given.
	waiters    map[machine.Waiter]chan<- control.Reply
	lastWaiter machine.Waiter
	baseID     *osproc.BaseID // epoch 0's base id, read from --base-id-path
	gate       initGate       // Envoy's INITIALIZING flag; nil with --init-gate off
	// lastSpawn is the last epoch forked; Envoy says it is held as
	// initializing from its fork (its watcher need not report InitStarted).
	lastSpawn machine.Spawned
	pidFile   pidFile
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
	var gate initGate
	if cfg.InitGate == config.InitGateAuto {
		gate = sys.newInitGate(cfg.ReadyTimeout)
	}
	return &runner{
		gate: gate,
		cfg:  cfg,
		log:  log,
		sys:  sys,
		machine: machine.New(machine.Policy{
			TermWait:            cfg.TermWait,
			Check:               len(cfg.Check) > 0 || cfg.BaseIDPath != "",
			Readiness:           cfg.Readiness(),
			Guard:               cfg.MemoryGuard == config.MemoryGuardAuto,
			StopDrain:           cfg.StopDrain,
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
		tasks:    tasks{},
		waiters:  map[machine.Waiter]chan<- control.Reply{},
		ctx:      ctx,
		cancel:   cancel,
		instance: instanceID(cfg),
		started:  time.Now(),
		outputs:  map[int]outputs{},
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
	var watched <-chan watch.Event // nil without --watch
	if r.watcher != nil {
		watched = r.watcher.Events()
	}
	sig := r.signals
	select {
	case <-sig.chld:
		return r.reap()
	case ev := <-watched:
		return append(r.reap(), r.watched(ev)...)
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
