package machine

import (
	"fmt"
	"log/slog"
)

// This file is the stop: the signals the restarter handles, TERM to the
// newest epoch first and the older ones after, KILL after --term-wait, and
// the abort that follows an abnormal exit.

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
		return append(acts, m.requestRestart(bySIGHUP)...)
	case SIGUSR1:
		return append(acts, m.forwardUSR1()...)
	case SIGTERM, SIGINT, SIGQUIT:
		return append(acts, m.stopSignal(sig)...)
	}
	return acts
}

// stopSignal: SIGTERM, SIGINT or SIGQUIT, in each phase.
func (m *Machine) stopSignal(sig Signal) []Action {
	switch m.phase {
	case draining:
		// The operator insists: the rest of the drain is skipped.
		return m.endDrain(fmt.Sprintf("%s during the drain: stopping now", sig))
	case terminating:
		// The operator insists (a second Ctrl-C): do not make them wait.
		return m.kill(slog.LevelWarn, fmt.Sprintf("%s during shutdown: force killing all child processes", sig.String()))
	case killing:
		return []Action{info("ignoring " + sig.String() + ": shutdown in progress")}
	}
	var acts []Action
	for _, pid := range m.held {
		acts = append(acts, info(fmt.Sprintf("PID=%d was stopped by the same signal: part of the shutdown", pid), "pid", pid))
	}
	m.held = nil
	if m.policy.StopDrain > 0 && len(m.children) > 0 {
		return append(acts, m.beginDrain()...)
	}
	m.phase = terminating
	acts = append(acts, m.notify(Notify{Stopping: true, Status: "shutting down"})...)
	acts = append(acts, m.abandonRestarts("shutdown in progress")...)
	return append(acts, m.terminate()...)
}

// terminate sends the stop's TERMs, newest epoch first, and arms the term
// wait (or exits, with no child left).
func (m *Machine) terminate() []Action {
	m.phase = terminating
	acts := m.termNewestFirst()
	if len(m.children) == 0 {
		return append(acts, m.exit(m.code, "all children exited cleanly")...)
	}
	return append(acts, SetTimer{Timer: TermWaitTimer, After: m.policy.TermWait})
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
