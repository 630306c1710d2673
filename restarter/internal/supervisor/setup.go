package supervisor

import (
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// This file is what happens before epoch 0 and after the last epoch: the
// set-up (subreaper, pid file, leftovers of an earlier run, the stale base
// id file, the control socket) and what the epochs left behind at exit.

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
		if err := r.sys.checkOwnProc(); err != nil {
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
		p, err := r.sys.takePIDFile(r.cfg.PIDFile)
		if err != nil {
			return fail(err)
		}
		r.pidFile = p
	}
	if err := r.sys.checkLeftovers(r.instance, func(msg string) { r.log.Warn(msg) }); err != nil {
		return fail(err)
	}
	if r.cfg.BaseIDPath != "" {
		if err := r.sys.clearBaseID(r.cfg.BaseIDPath); err != nil {
			return fail(err)
		}
	}
	if r.cfg.ControlSocket != "" {
		s, err := r.sys.listenControl(r.cfg.ControlSocket, func(msg string) { r.log.Warn(msg) })
		if err != nil {
			return fail(err)
		}
		r.control = s
	}
	if len(r.cfg.Watch) > 0 {
		w, err := r.sys.newWatcher(r.cfg.Watch, r.cfg.WatchDebounce)
		if err != nil {
			return fail(config.Usagef("flag -watch: %v", err))
		}
		r.watcher = w
	}
	r.logGuard()
	r.startRelay()
	if r.pidFile != nil {
		// Only now: a restarter that failed to set up never claimed the file.
		if err := r.pidFile.Write(r.sys.getpid()); err != nil {
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
	if r.watcher != nil {
		r.watcher.Close()
	}
	r.closeRelay()
	if r.pidFile != nil {
		r.pidFile.Release(r.sys.getpid())
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
