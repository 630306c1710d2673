package machine

import (
	"fmt"
	"log/slog"
)

// This file is what waits for Envoy: the init gate (no epoch is forked
// while the newest one holds Envoy's INITIALIZING flag; a flag left set by
// an epoch that died initializing is healed), the socket slots (epoch N
// waits for epoch N-3, whose domain socket ids it would bind), and SIGUSR1
// held from an epoch until it has installed its handlers.

// slotHolder returns the live epoch whose domain socket ids the next epoch
// would bind, or nil. Envoy names its sockets base_id*10 + epoch%3, so
// epoch N collides with epoch N-3, which was told to terminate when N-1
// started but may still be exiting: N would fail to bind (errno=98). Only
// children known to be Envoy (seen by the init gate) are held: any other
// command binds no such sockets, and an old epoch of it may never exit.
func (m *Machine) slotHolder() *child {
	if m.nextEpoch == 0 || !m.envoy {
		return nil
	}
	for i := range m.children {
		if c := &m.children[i]; c.epoch%3 == m.nextEpoch%3 {
			return c
		}
	}
	return nil
}

// holdForSlot logs, once per hold, that the queued restart waits for s,
// the epoch holding its socket ids, to be reaped.
func (m *Machine) holdForSlot(s *child) []Action {
	m.queued.slotHeld = true
	m.counters.SlotHolds++
	return []Action{info(fmt.Sprintf("holding hot restart to epoch %d: epoch %d (PID=%d) is still exiting", m.nextEpoch, s.epoch, s.pid),
		"epoch", m.nextEpoch, "holder_epoch", s.epoch, "pid", s.pid)}
}

// initStarted: the watcher saw epoch's INITIALIZING flag set, though the
// epoch was not known to be Envoy when it was forked (epoch 0, normally).
func (m *Machine) initStarted(epoch int) []Action {
	i := m.indexOfEpoch(epoch)
	if i < 0 || m.children[i].initializing || m.children[i].initDone {
		return nil
	}
	m.children[i].initializing = true
	m.envoy = true
	return []Action{info(fmt.Sprintf("epoch %d is initializing (Envoy's INITIALIZING flag is set)", epoch), "epoch", epoch)}
}

// initDone: epoch cleared INITIALIZING, or the gate gave up on it (Warning).
func (m *Machine) initDone(ev InitDone) []Action {
	i := m.indexOfEpoch(ev.Epoch)
	if i < 0 || m.children[i].initDone {
		return nil
	}
	c := &m.children[i]
	c.initDone = true
	m.envoy = m.envoy || ev.Envoy
	var acts []Action
	if ev.Warning != "" {
		acts = append(acts, Log{Level: slog.LevelWarn, Msg: fmt.Sprintf("init gate off for epoch %d: %s", ev.Epoch, ev.Warning), Args: []any{"epoch", ev.Epoch}})
	}
	if !c.initializing {
		acts = append(acts, m.sendHeldUSR1(i)...)
		if ev.Envoy && !m.policy.Readiness {
			// An Envoy whose flag was never seen set (it set and cleared it
			// between two looks) is done initializing all the same; with a
			// probe, the probe says when it is ready.
			acts = append(acts, m.becameLive(i)...)
		}
		return acts
	}
	c.initializing = false
	if r := m.restart; r != nil && r.epoch == ev.Epoch {
		m.stamp(r.id, initializedAt)
	}
	acts = append(acts, info(fmt.Sprintf("epoch %d finished initializing", ev.Epoch), "epoch", ev.Epoch, "pid", c.pid))
	acts = append(acts, m.sendHeldUSR1(i)...)
	if !c.ready {
		return acts
	}
	acts = append(acts, m.becameLive(i)...)
	return append(acts, m.startQueued()...)
}

// heal clears the INITIALIZING flag that epoch (process pid), which died
// initializing, may have left set, unless another epoch is starting: then
// the flag is that one's (envoyproxy/envoy#33446).
func (m *Machine) heal(epoch, pid int) []Action {
	if !m.policy.InitGate || m.phase != running || m.initializingChild() != nil || (m.restart != nil && m.restart.pid != 0) {
		return nil
	}
	return []Action{ClearInit{Epoch: epoch, PID: pid}}
}

// initializingChild returns the epoch holding (or about to hold) Envoy's
// INITIALIZING flag, or nil.
func (m *Machine) initializingChild() *child {
	for i := range m.children {
		if m.children[i].initializing {
			return &m.children[i]
		}
	}
	return nil
}

// takesUSR1 reports whether the epoch has installed its signal handlers, as
// far as the restarter can tell: until then SIGUSR1's default action kills
// it (Envoy installs them in RunHelper, after config load and server init).
// With the init gate, that is once it cleared INITIALIZING, or once the gate
// decided it is not Envoy, or once the readiness probe passed; without the
// gate, once the probe passed (at once when there is none).
func (m *Machine) takesUSR1(c *child) bool {
	if m.policy.InitGate {
		return c.initDone || (m.policy.Readiness && c.ready)
	}
	return c.ready
}

// sendHeldUSR1 sends child i the SIGUSR1 held for it, if any and it can take
// it now: exactly once.
func (m *Machine) sendHeldUSR1(i int) []Action {
	c := &m.children[i]
	if !c.usr1 || !m.takesUSR1(c) {
		return nil
	}
	c.usr1 = false
	return []Action{info(fmt.Sprintf("sending SIGUSR1 to PID=%d", c.pid), "pid", c.pid, "epoch", c.epoch), Kill{PID: c.pid, Signal: SIGUSR1}}
}

// forwardUSR1 sends SIGUSR1 to every epoch that can take it. An epoch
// still starting may not have installed its handler yet, and SIGUSR1's
// default action would kill it: it gets the signal once it can take it
// (takesUSR1), once however many came meanwhile.
func (m *Machine) forwardUSR1() []Action {
	var acts []Action
	for i := range m.children {
		c := &m.children[i]
		if !m.takesUSR1(c) {
			c.usr1 = true
			acts = append(acts, info(fmt.Sprintf("deferring SIGUSR1 to PID=%d until epoch %d is ready", c.pid, c.epoch), "pid", c.pid, "epoch", c.epoch))
			continue
		}
		acts = append(acts, info(fmt.Sprintf("sending SIGUSR1 to PID=%d", c.pid), "pid", c.pid, "epoch", c.epoch), Kill{PID: c.pid, Signal: SIGUSR1})
	}
	return acts
}

// initCleared: a ClearInit found the flag left set and cleared it.
func (m *Machine) initCleared(ev InitCleared) []Action {
	m.counters.InitFlagsCleared++
	return []Action{Log{Level: slog.LevelWarn, Msg: fmt.Sprintf("cleared Envoy's INITIALIZING flag, left set by epoch %d (PID=%d) which died initializing (envoyproxy/envoy#33446)", ev.Epoch, ev.PID),
		Args: []any{"epoch", ev.Epoch, "pid", ev.PID}}}
}
