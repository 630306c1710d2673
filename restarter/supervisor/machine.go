package supervisor

import (
	"fmt"
	"log/slog"
	"syscall"
	"time"
)

// KillWait bounds how long the restarter waits for SIGKILLed children to be
// reaped before it gives up on them and exits anyway (a process stuck in
// uninterruptible sleep must not hang the process manager).
const KillWait = 5 * time.Second

type phase int

const (
	running     phase = iota // serving; SIGHUP starts epochs
	terminating              // SIGTERM/SIGINT sent to children; waiting up to termWait
	killing                  // SIGKILL sent to children; reaping them, then exit
	exited                   // Exit emitted; every later event is ignored
)

// child is one live epoch.
type child struct {
	pid, epoch int
}

// Machine is the restarter's state machine: it holds every child and the
// shutdown phase, and turns each Event into the Actions to perform. It does
// no I/O, so it is driven by the OS layer in production and by table tests.
// It is not safe for concurrent use: one goroutine owns it.
type Machine struct {
	termWait  time.Duration
	phase     phase
	children  []child // live children, oldest epoch first
	nextEpoch int
	code      int // exit code once the phase is killing
}

// NewMachine returns a Machine that gives children termWait to exit after
// SIGTERM before it kills them.
func NewMachine(termWait time.Duration) *Machine {
	return &Machine{termWait: termWait}
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

// Handle applies ev and returns the actions to perform, in order.
func (m *Machine) Handle(ev Event) []Action {
	if m.phase == exited {
		return nil
	}
	switch ev := ev.(type) {
	case Started:
		return m.spawnNext()
	case Spawned:
		m.children = append(m.children, child{pid: ev.PID, epoch: ev.Epoch})
		return []Action{info(fmt.Sprintf("forked new child process with PID=%d", ev.PID), "pid", ev.PID, "epoch", ev.Epoch)}
	case SpawnFailed:
		return append([]Action{logf(slog.LevelError, "epoch %d: %s", ev.Epoch, ev.Err)}, m.abort()...)
	case Exited:
		return m.exited(ev)
	case Signaled:
		return m.signaled(ev.Signal)
	case TimerFired:
		return m.timerFired(ev.Timer)
	}
	panic(fmt.Sprintf("supervisor: unknown event %T", ev))
}

func (m *Machine) spawnNext() []Action {
	epoch := m.nextEpoch
	m.nextEpoch++
	return []Action{
		info(fmt.Sprintf("forking and execing new child process at epoch %d", epoch), "epoch", epoch),
		Spawn{Epoch: epoch},
	}
}

func (m *Machine) signaled(sig syscall.Signal) []Action {
	acts := []Action{info("got " + signalName(sig))}
	switch sig {
	case syscall.SIGHUP:
		if m.phase != running {
			return append(acts, info("ignoring SIGHUP: shutdown in progress"))
		}
		return append(acts, m.spawnNext()...)
	case syscall.SIGUSR1:
		return append(acts, m.signalAll(syscall.SIGUSR1, "sending SIGUSR1 to PID=%d")...)
	case syscall.SIGTERM, syscall.SIGINT:
		if m.phase != running {
			return append(acts, info("ignoring "+signalName(sig)+": shutdown in progress"))
		}
		m.phase = terminating
		acts = append(acts, m.signalAll(syscall.SIGTERM, "sending TERM to PID=%d")...)
		if len(m.children) == 0 {
			return append(acts, m.exit(ExitClean, "all children exited cleanly")...)
		}
		return append(acts, SetTimer{Timer: TermWaitTimer, After: m.termWait})
	}
	return acts
}

func (m *Machine) exited(ev Exited) []Action {
	i := m.indexOf(ev.PID)
	if i < 0 {
		// Only an orphan reaped as subreaper can get here; it is not an epoch.
		return []Action{logf(slog.LevelDebug, "reaped PID=%d, which is not an epoch", ev.PID)}
	}
	epoch := m.children[i].epoch
	m.children = append(m.children[:i], m.children[i+1:]...)
	var acts []Action
	if ev.Signal != 0 {
		acts = append(acts, Log{Level: slog.LevelWarn, Msg: fmt.Sprintf("PID=%d was killed with signal=%d", ev.PID, int(ev.Signal)),
			Args: []any{"pid", ev.PID, "epoch", epoch, "signal", int(ev.Signal), "signal_name", signalName(ev.Signal)}})
	} else {
		level := slog.LevelInfo
		if ev.Code != 0 {
			level = slog.LevelWarn
		}
		acts = append(acts, Log{Level: level, Msg: fmt.Sprintf("PID=%d exited with code=%d", ev.PID, ev.Code),
			Args: []any{"pid", ev.PID, "epoch", epoch, "code", ev.Code}})
	}
	clean := ev.Signal == 0 && ev.Code == 0
	switch {
	case m.phase == running && !clean:
		return append(acts, m.abort()...)
	case len(m.children) > 0:
		return acts
	case m.phase == running:
		return append(acts, m.exit(ExitClean, "exiting due to lack of child processes")...)
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
		return m.kill(slog.LevelWarn, fmt.Sprintf("children still running after --term-wait=%s", m.termWait))
	case t == KillWaitTimer && m.phase == killing:
		var acts []Action
		for _, c := range m.children {
			acts = append(acts, logf(slog.LevelError, "PID=%d did not exit after SIGKILL; giving up on it", c.pid))
		}
		return append(acts, m.exit(m.code, "")...)
	}
	return nil // a timer of a phase already left
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
	acts = append(acts, m.signalAll(syscall.SIGKILL, "force killing PID=%d")...)
	if len(m.children) == 0 {
		return append(acts, m.exit(m.code, "")...)
	}
	return append(acts, SetTimer{Timer: KillWaitTimer, After: KillWait})
}

func (m *Machine) signalAll(sig syscall.Signal, format string) []Action {
	var acts []Action
	for _, c := range m.children {
		acts = append(acts, info(fmt.Sprintf(format, c.pid), "pid", c.pid, "epoch", c.epoch), Kill{PID: c.pid, Signal: sig})
	}
	return acts
}

func (m *Machine) exit(code int, why string) []Action {
	m.phase = exited
	var acts []Action
	if why != "" {
		acts = append(acts, info(why))
	}
	return append(acts, info(fmt.Sprintf("exiting with code=%d", code), "code", code), Exit{Code: code})
}

func (m *Machine) indexOf(pid int) int {
	for i, c := range m.children {
		if c.pid == pid {
			return i
		}
	}
	return -1
}

func info(msg string, args ...any) Log { return Log{Level: slog.LevelInfo, Msg: msg, Args: args} }

func logf(level slog.Level, format string, a ...any) Log {
	return Log{Level: level, Msg: fmt.Sprintf(format, a...)}
}

// signalName returns the conventional name of sig, such as SIGHUP.
func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGABRT:
		return "SIGABRT"
	}
	return fmt.Sprintf("signal %d", int(sig))
}
