package machine

import (
	"fmt"
	"log/slog"
)

// This file is the drain before a stop (--stop-drain): on the first stop
// signal, Envoy's health check is failed and its listeners drained, so
// load balancers stop sending and connections close; the stop proper
// (TERM, newest epoch first) follows once no connection is left, or after
// --stop-drain, or at a second stop signal.

// beginDrain starts the drain.
func (m *Machine) beginDrain() []Action {
	m.phase, m.drainLeft = draining, -1
	acts := m.notify(Notify{Stopping: true, Status: fmt.Sprintf("draining (at most %s)", m.policy.StopDrain)})
	acts = append(acts, m.abandonRestarts("shutdown in progress")...)
	return append(acts,
		info(fmt.Sprintf("draining Envoy's connections before stopping: failing its health check, draining its listeners, for at most --stop-drain=%s", m.policy.StopDrain)),
		StartDrain{},
		SetTimer{Timer: StopDrainTimer, After: m.policy.StopDrain})
}

// drainProgress follows the connections left while draining.
func (m *Machine) drainProgress(ev DrainProgress) []Action {
	if m.phase != draining || ev.Connections == m.drainLeft {
		return nil
	}
	m.drainLeft = ev.Connections
	if ev.Connections <= 0 {
		return m.endDrain("no connection left: stopping")
	}
	msg := fmt.Sprintf("draining: %d connection(s) left", ev.Connections)
	return append([]Action{Log{Level: slog.LevelDebug, Msg: msg, Args: []any{"connections", ev.Connections}}},
		m.notify(Notify{Stopping: true, Status: msg})...)
}

// stopDrainFired: --stop-drain passed with connections left.
func (m *Machine) stopDrainFired() []Action {
	if m.phase != draining {
		return nil
	}
	left := "an unknown number of"
	if m.drainLeft >= 0 {
		left = fmt.Sprint(m.drainLeft)
	}
	return m.endDrain(fmt.Sprintf("--stop-drain=%s passed with %s connection(s) left: stopping", m.policy.StopDrain, left))
}

// endDrain ends the drain with why, and begins the stop proper.
func (m *Machine) endDrain(why string) []Action {
	acts := []Action{StopTimer{Timer: StopDrainTimer}, StopDrain{}, info(why)}
	acts = append(acts, m.notify(Notify{Stopping: true, Status: "shutting down"})...)
	return append(acts, m.terminate()...)
}
