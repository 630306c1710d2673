package machine

import (
	"fmt"
	"log/slog"
)

// This file is what each timer does when it fires. A timer that fires in a
// phase, or for a restart, already left does nothing: each handler checks
// that its reason still holds.

// timerHandlers maps each timer to its handler.
var timerHandlers = map[Timer]func(*Machine) []Action{
	TermWaitTimer:     (*Machine).termWaitFired,
	OlderTermTimer:    (*Machine).olderTermFired,
	GroupStopTimer:    (*Machine).groupStopFired,
	KillWaitTimer:     (*Machine).killWaitFired,
	ReadyTimeoutTimer: (*Machine).readyTimeoutFired,
	StopDrainTimer:    (*Machine).stopDrainFired,
}

func (m *Machine) timerFired(t Timer) []Action {
	if h := timerHandlers[t]; h != nil {
		return h(m)
	}
	return nil
}

// termWaitFired: children still running after --term-wait are KILLed. The
// OS layer reaps before delivering a timer, so a child that exited in the
// wait's last instant is already gone and not reported as killed.
func (m *Machine) termWaitFired() []Action {
	if m.phase != terminating {
		return nil
	}
	return m.kill(slog.LevelWarn, fmt.Sprintf("children still running after --term-wait=%s", m.policy.TermWait))
}

// olderTermFired: a newest epoch still stopping at half of --term-wait no
// longer holds the older epochs' TERM.
func (m *Machine) olderTermFired() []Action {
	if m.phase != terminating || m.olderHeldBy == 0 {
		return nil
	}
	return m.termOlder(fmt.Sprintf("PID=%d still running after half of --term-wait=%s; sending TERM to the older epochs", m.olderHeldBy, m.policy.TermWait))
}

// groupStopFired: no stop signal came within GroupStopGrace of the held
// epochs' deaths, so they were abnormal after all; unless the one held is
// the new epoch of a restart that --on-failed-restart keep lets fail.
func (m *Machine) groupStopFired() []Action {
	if m.phase != running || len(m.held) == 0 {
		return nil
	}
	held := m.held
	m.held = nil
	if r := m.restart; r != nil && len(held) == 1 && held[0] == r.pid && m.keeps(r.epoch) {
		epoch, pid := r.epoch, r.pid
		acts := m.finishRestart(false, r.failure)
		if r.heldInitializing {
			acts = append(acts, m.heal(epoch, pid)...)
		}
		return append(acts, m.keep(epoch)...)
	}
	return m.abort()
}

// killWaitFired: children that survived SIGKILL for KillWait (stuck in
// uninterruptible sleep) are given up on.
func (m *Machine) killWaitFired() []Action {
	if m.phase != killing {
		return nil
	}
	var acts []Action
	for _, c := range m.children {
		acts = append(acts, logf(slog.LevelError, "PID=%d did not exit after SIGKILL; giving up on it", c.pid))
	}
	return append(acts, m.exit(m.code, "")...)
}

// readyTimeoutFired: a new epoch that never gets ready counts as failed. It
// is killed, and its death takes the usual failed-restart path.
func (m *Machine) readyTimeoutFired() []Action {
	r := m.restart
	if m.phase != running || r == nil || r.pid == 0 || r.failure != "" {
		return nil
	}
	why := r.notReady
	i := m.indexOf(r.pid)
	if i >= 0 && m.children[i].initializing {
		why = "Envoy's INITIALIZING flag is still set"
		if r.notReady != "" {
			why += "; " + r.notReady
		}
	} else if why == "" {
		why = "no probe has finished yet"
	}
	r.failure = fmt.Sprintf("epoch %d not ready within --ready-timeout=%s: %s", r.epoch, m.policy.ReadyTimeout, why)
	acts := []Action{Log{Level: slog.LevelError, Msg: r.failure + "; killing it", Args: []any{"epoch", r.epoch, "pid", r.pid}}}
	if i >= 0 && m.children[i].watching {
		m.children[i].watching = false
		acts = append(acts, StopWatch{Epoch: r.epoch})
	}
	return append(acts, Kill{PID: r.pid, Signal: SIGKILL})
}
