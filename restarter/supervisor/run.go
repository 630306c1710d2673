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
)

// Version is the restarter's version; release builds set it with
// -ldflags "-X github.com/envoy-restarter/restarter/restarter/supervisor.Version=v1.2.3".
var Version = ""

// Main runs the restarter with the command line args (without the program
// name) and returns its exit code: ExitClean, ExitError or ExitUsage.
func Main(args []string, stdout, stderr io.Writer) int {
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
	return Run(cfg, NewLogger(stdout, cfg.LogFormat))
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
// signals, reaped children and timers into events, and performs the actions.
type runner struct {
	cfg     Config
	log     *slog.Logger
	machine *Machine
	forker  *forker
	timers  map[Timer]*time.Timer
	gen     map[Timer]int // the generation of each timer; older firings are dropped
	fired   chan timerFiring
}

type timerFiring struct {
	timer Timer
	gen   int
}

// Run supervises cfg.Command until the restarter should exit, and returns
// the exit code. It installs the signal handlers it needs and removes them
// before returning; every child it started has been reaped by then (unless
// one survived SIGKILL for KillWait, which is logged).
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
	term, intr := notify(syscall.SIGTERM), notify(syscall.SIGINT)
	defer signal.Reset(syscall.SIGCHLD, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)

	r := &runner{
		cfg:     cfg,
		log:     log,
		machine: NewMachine(cfg.TermWait),
		forker:  newForker(),
		timers:  map[Timer]*time.Timer{},
		gen:     map[Timer]int{},
		fired:   make(chan timerFiring, 4),
	}
	defer r.stopTimers()

	log.Info("starting hot-restarter with target: "+cfg.Command, "target", cfg.Command, "path", cfg.Path, "version", version())
	if cfg.Subreaper || os.Getpid() == 1 {
		if err := becomeSubreaper(); err != nil {
			log.Error(err.Error())
			return ExitError
		}
		r.cfg.Subreaper = true
	}

	events := []Event{Started{}}
	for {
		if code, done := r.handle(events); done {
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
		case f := <-r.fired:
			if f.gen != r.gen[f.timer] {
				events = nil
				continue
			}
			events = append(r.reap(), TimerFired{Timer: f.timer})
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
			case Kill:
				if err := kill(a.PID, a.Signal); err != nil {
					r.log.Error(err.Error())
				}
			case SetTimer:
				r.setTimer(a.Timer, a.After)
			case Exit:
				return a.Code, true
			}
		}
	}
	return 0, false
}

func (r *runner) spawn(epoch int) Event {
	pid, err := r.forker.start(r.cfg.Path, append([]string{r.cfg.Command}, r.cfg.Args...), childEnv(os.Environ(), epoch), r.cfg.Dir)
	if err != nil {
		return SpawnFailed{Epoch: epoch, Err: err.Error()}
	}
	return Spawned{Epoch: epoch, PID: pid}
}

func (r *runner) reap() []Event {
	events := reap(r.machine.PIDs())
	if r.cfg.Subreaper {
		events = append(events, reapOrphans()...)
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

// childEnv returns env with RESTART_EPOCH set to epoch (replacing any
// inherited value).
func childEnv(env []string, epoch int) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "RESTART_EPOCH=") {
			out = append(out, kv)
		}
	}
	return append(out, "RESTART_EPOCH="+strconv.Itoa(epoch))
}
