package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Version is the restarter's version; release builds set it with
// -ldflags "-X github.com/envoy-restarter/restarter/restarter/supervisor.Version=v1.2.3".
var Version = ""

// Main runs the restarter with the command line args (without the program
// name) and returns its exit code: ExitClean, ExitError or ExitUsage.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "status" || args[0] == "reload") {
		return clientMain(args[0], args[1:], stdout, stderr)
	}
	cfg, err := ParseArgs(args, stdout)
	var usage *UsageError
	switch {
	case errors.Is(err, errHelp):
		return ExitClean
	case errors.Is(err, errVersion):
		fmt.Fprintf(stdout, "restarter %s\n", version())
		return ExitClean
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "restarter: %s\n", usage)
		return ExitUsage
	case err != nil:
		fmt.Fprintf(stderr, "restarter: %v\n", err)
		return ExitUsage
	}
	log, lw := newAsyncLogger(stdout, cfg.LogFormat)
	code := Run(cfg, log)
	lw.flush(logFlushTimeout)
	return code
}

func version() string {
	if Version != "" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" && info.Main.Version != "(devel)" {
			return info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return "devel-" + s.Value
			}
		}
	}
	return "devel"
}

// runner is the event loop: the one goroutine that owns the Machine, turns
// signals, reaped children, timers, helper outcomes and control requests
// into events, and performs the actions.
type runner struct {
	cfg     Config
	log     *slog.Logger
	machine *Machine
	forker  *forker
	timers  map[Timer]*time.Timer
	gen     map[Timer]int // the generation of each timer; older firings are dropped
	fired   chan timerFiring
	async   chan Event // outcomes of checks and readiness probes
	ctx     context.Context
	control *controlServer
	reloads map[int]chan controlReply // reload requests waiting for their outcome
	nextID  int
	baseID  string // epoch 0's base id, read from --base-id-path
	pidFile *pidFile
	// instance marks every process the restarter starts (instanceEnv).
	instance string
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
	// Signals get a channel each, with room for one: a burst of one signal
	// coalesces (as the kernel does) without crowding out the others.
	notify := func(sig os.Signal) chan os.Signal {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, sig)
		return ch
	}
	chld := notify(syscall.SIGCHLD)
	hup, usr1 := notify(syscall.SIGHUP), notify(syscall.SIGUSR1)
	term, intr, quit := notify(syscall.SIGTERM), notify(syscall.SIGINT), notify(syscall.SIGQUIT)
	// Caught to be ignored: SIGUSR2's default action would kill the
	// restarter, and SIGPIPE's would when a log reader goes away (Go raises it
	// for a write to stdout or stderr that fails with EPIPE, even when the
	// restarter was started with SIGPIPE ignored). A caught signal, unlike an
	// ignored one, is reset to its default in the children at exec.
	usr2, pipe := notify(syscall.SIGUSR2), notify(syscall.SIGPIPE)
	// The handlers are never removed: between Run's return and the process's
	// exit, a late SIGHUP or SIGTERM must not kill the restarter by its
	// default action and replace the exit code with "killed by signal".

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // stops checks and probes still running
	r := &runner{
		cfg: cfg,
		log: log,
		machine: NewMachine(Policy{
			TermWait:     cfg.TermWait,
			Check:        len(cfg.Check) > 0 || cfg.BaseIDPath != "",
			Readiness:    cfg.readiness(),
			ReadyTimeout: cfg.ReadyTimeout,
			Notify:       os.Getenv("NOTIFY_SOCKET") != "",
		}),
		forker:   newForker(),
		timers:   map[Timer]*time.Timer{},
		gen:      map[Timer]int{},
		fired:    make(chan timerFiring, 4),
		async:    make(chan Event, 16),
		ctx:      ctx,
		reloads:  map[int]chan controlReply{},
		instance: instanceID(cfg),
	}
	defer r.stopTimers()

	log.Info("starting hot-restarter with target: "+cfg.Command, "target", cfg.Command, "path", cfg.Path, "version", version())
	if code, ok := r.setUp(); !ok {
		return code
	}
	defer r.tearDown()

	var calls chan controlCall // nil (never ready) without a control socket
	if r.control != nil {
		calls = r.control.calls
	}
	events := []Event{Started{}}
	for {
		if code, done := r.handle(events); done {
			if r.cfg.Subreaper {
				r.stopOrphans(chld)
			}
			return code
		}
		// Exits are always collected first, so the machine sees a child's
		// death before a signal or timer that arrived at the same moment.
		select {
		case <-chld:
			events = r.reap()
		case <-hup:
			events = append(r.reap(), Signaled{Signal: syscall.SIGHUP})
		case <-usr1:
			events = append(r.reap(), Signaled{Signal: syscall.SIGUSR1})
		case <-term:
			events = append(r.reap(), Signaled{Signal: syscall.SIGTERM})
		case <-intr:
			events = append(r.reap(), Signaled{Signal: syscall.SIGINT})
		case <-quit:
			events = append(r.reap(), Signaled{Signal: syscall.SIGQUIT})
		case <-usr2:
			events = []Event{Signaled{Signal: syscall.SIGUSR2}}
		case <-pipe:
			events = []Event{Signaled{Signal: syscall.SIGPIPE}}
		case ev := <-r.async:
			events = append(r.reap(), ev)
		case c := <-calls:
			events = append(r.reap(), r.controlCall(c)...)
		case f := <-r.fired:
			if f.gen != r.gen[f.timer] {
				events = nil
				continue
			}
			events = append(r.reap(), TimerFired{Timer: f.timer})
		}
	}
}

// setUp does what must happen before epoch 0: subreaper, pid file (taken
// first, written last), the stale base id file, control socket. On failure it has undone what it did and returns the exit code.
func (r *runner) setUp() (int, bool) {
	if r.cfg.Subreaper || os.Getpid() == 1 {
		if err := becomeSubreaper(); err != nil {
			r.log.Error(err.Error())
			return ExitError, false
		}
		r.cfg.Subreaper = true
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
	if err := checkLeftovers(r.instance, func(msg string) { r.log.Warn(msg) }); err != nil {
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
		if err := r.pidFile.write(); err != nil {
			return fail(err)
		}
	}
	return 0, true
}

// stopOrphans TERMs the processes adopted as subreaper that still run once
// the epochs are gone, KILLs those left after --term-wait, and reaps them
// (waiting at most KillWait more). A subreaper that exits would hand them
// on to PID 1, or, as PID 1, to the kernel's teardown of the container.
func (r *runner) stopOrphans(chld <-chan os.Signal) {
	pids := r.forker.orphans(r.machine.PIDs())
	if len(pids) == 0 {
		return
	}
	r.log.Info(fmt.Sprintf("sending TERM to %d orphaned process(es) adopted as subreaper: PIDs %v", len(pids), pids))
	for _, pid := range pids {
		kill(pid, syscall.SIGTERM)
	}
	deadline := time.NewTimer(r.cfg.TermWait)
	defer deadline.Stop()
	killed := false
	for {
		r.forker.reapOrphans()
		left := r.forker.orphans(r.machine.PIDs())
		if len(left) == 0 {
			return
		}
		select {
		case <-chld:
		case <-deadline.C:
			if killed {
				r.log.Error(fmt.Sprintf("orphaned PIDs %v did not exit after SIGKILL; giving up on them", left))
				return
			}
			r.log.Warn(fmt.Sprintf("orphaned PIDs %v still running after --term-wait=%s; force killing them", left, r.cfg.TermWait))
			for _, pid := range left {
				kill(pid, syscall.SIGKILL)
			}
			killed = true
			deadline.Reset(KillWait)
		}
	}
}

func (r *runner) tearDown() {
	r.forker.killHelpers()
	if r.control != nil {
		r.control.close()
	}
	if r.pidFile != nil {
		r.pidFile.release()
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
			case Kill:
				if err := kill(a.PID, a.Signal); err != nil {
					r.log.Error(err.Error())
				}
			case SetTimer:
				r.setTimer(a.Timer, a.After)
			case RunCheck:
				if ev, ok := r.startCheck(a.Epoch); !ok {
					events = append([]Event{ev}, events...)
				}
			case WatchReady:
				ctx, cancel := context.WithTimeout(r.ctx, r.cfg.ReadyTimeout+time.Second)
				go func() {
					defer cancel()
					if ev, ok := r.watchReady(ctx, a.Epoch, a.PID); ok {
						r.async <- ev
					}
				}()
			case Notify:
				r.notify(a)
			case ReloadResult:
				r.answerReload(a)
			case Exit:
				return a.Code, true
			}
		}
	}
	return 0, false
}

func (r *runner) spawn(epoch int) Event {
	pid, err := r.forker.start(r.cfg.Path, append([]string{r.cfg.Command}, r.cfg.Args...), r.env(epoch), r.cfg.Dir)
	if err != nil {
		return SpawnFailed{Epoch: epoch, Err: err.Error()}
	}
	return Spawned{Epoch: epoch, PID: pid}
}

// startCheck begins the pre-restart check of epoch: it reads the base id
// (with --base-id-path), then runs --check in the background. When the
// outcome is already known it returns it with ok=false.
func (r *runner) startCheck(epoch int) (CheckFinished, bool) {
	if r.cfg.BaseIDPath != "" {
		id, err := readBaseID(r.cfg.BaseIDPath)
		if err != nil {
			return CheckFinished{Epoch: epoch, Err: "base id: " + err.Error()}, false
		}
		r.baseID = id
	}
	if len(r.cfg.Check) == 0 {
		return CheckFinished{Epoch: epoch}, false
	}
	env := r.env(epoch)
	go func() { r.async <- r.runCheck(r.ctx, epoch, env) }()
	return CheckFinished{}, true
}

// env returns the environment of epoch's start script and helpers: the
// restarter's own, with RESTART_EPOCH and, with --base-id-path,
// ENVOY_BASE_ID_PATH and (for epochs after 0) ENVOY_BASE_ID.
func (r *runner) env(epoch int) []string {
	set := []string{"RESTART_EPOCH=" + strconv.Itoa(epoch), instanceEnv + "=" + r.instance}
	if r.cfg.BaseIDPath != "" {
		set = append(set, "ENVOY_BASE_ID_PATH="+r.cfg.BaseIDPath)
		if epoch > 0 && r.baseID != "" {
			set = append(set, "ENVOY_BASE_ID="+r.baseID)
		}
	}
	env := os.Environ()
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		// NOTIFY_SOCKET is the restarter's: an epoch or helper that used it
		// would speak for the restarter to the service manager.
		if name == "RESTART_EPOCH" || name == "NOTIFY_SOCKET" || name == instanceEnv || (r.cfg.BaseIDPath != "" && (name == "ENVOY_BASE_ID" || name == "ENVOY_BASE_ID_PATH")) {
			continue
		}
		out = append(out, kv)
	}
	return append(out, set...)
}

// readBaseID reads the decimal base id Envoy wrote to path.
func readBaseID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if _, err := strconv.ParseUint(id, 10, 32); err != nil {
		return "", fmt.Errorf("%s: %q is not a base id", path, id)
	}
	return id, nil
}

func (r *runner) controlCall(c controlCall) []Event {
	if c.command == "status" {
		s := r.machine.Status()
		c.reply <- controlReply{OK: true, Status: &s}
		return nil
	}
	r.nextID++
	r.reloads[r.nextID] = c.reply
	return []Event{ReloadRequested{ID: r.nextID}}
}

func (r *runner) answerReload(a ReloadResult) {
	reply, ok := r.reloads[a.ID]
	if !ok {
		return
	}
	delete(r.reloads, a.ID)
	epoch := a.Epoch
	reply <- controlReply{OK: a.OK, Error: a.Reason, Epoch: &epoch}
}

func (r *runner) notify(n Notify) {
	var lines []string
	if n.Ready {
		lines = append(lines, "READY=1")
	}
	if n.Reloading {
		lines = append(lines, "RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10))
	}
	if n.Stopping {
		lines = append(lines, "STOPPING=1")
	}
	lines = append(lines, "STATUS="+n.Status, "MAINPID="+strconv.Itoa(os.Getpid()))
	if _, err := daemon.SdNotify(false, strings.Join(lines, "\n")); err != nil {
		r.log.Warn(fmt.Sprintf("sd_notify: %v", err))
	}
}

func (r *runner) reap() []Event {
	events := reap(r.machine.PIDs())
	if r.cfg.Subreaper {
		events = append(events, r.forker.reapOrphans()...)
	}
	return events
}

func (r *runner) setTimer(t Timer, after time.Duration) {
	if old := r.timers[t]; old != nil {
		old.Stop()
	}
	r.gen[t]++
	f := timerFiring{timer: t, gen: r.gen[t]}
	r.timers[t] = time.AfterFunc(after, func() { r.fired <- f })
}

func (r *runner) stopTimers() {
	for _, t := range r.timers {
		t.Stop()
	}
}
