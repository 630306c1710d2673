package machine

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/envoy-restarter/restarter/restarter/status"
)

// This file is the hot restart: a SIGHUP or reload request starts one (or
// joins the one queued behind the restart in progress), the pre-restart
// check, the spawn, readiness, and the outcome answered to every waiter.
// What happens on SIGHUP while a restart is in progress: requestRestart.

// requestRestart starts a hot restart for waiters (none for a SIGHUP), or
// queues one to follow the restart in progress; a request that comes while
// one is queued already is coalesced into it (its record says so, its
// waiters get the queued restart's outcome).
func (m *Machine) requestRestart(t trigger, waiters ...Waiter) []Action {
	r, c, s := m.restart, m.initializingChild(), m.slotHolder()
	if r == nil && c == nil && s == nil {
		return m.beginRestart(waiters, m.newRecord(t, m.nextEpoch))
	}
	var acts []Action
	if m.queued == nil {
		m.queued = &queuedRestart{id: m.newRecord(t, m.nextEpoch)}
	} else {
		acts = m.coalesced(t, m.queued.id)
	}
	m.queued.waiters = append(m.queued.waiters, waiters...)
	what := t.describe()
	switch {
	case r != nil:
		return append(acts, info(fmt.Sprintf("hot restart to epoch %d in progress; %s queued for after it", r.epoch, what)))
	case c != nil:
		return append(acts, info(fmt.Sprintf("epoch %d is still initializing; %s queued for after it", c.epoch, what), "epoch", c.epoch))
	case !m.queued.slotHeld:
		return append(acts, m.holdForSlot(s)...)
	}
	return append(acts, info(fmt.Sprintf("epoch %d (PID=%d) is still exiting; %s queued for after it", s.epoch, s.pid, what), "epoch", s.epoch, "pid", s.pid))
}

// beginRestart starts epoch nextEpoch, recorded as id: through the
// pre-restart check when one is configured (never for epoch 0), else at
// once.
func (m *Machine) beginRestart(waiters []Waiter, id int) []Action {
	r := &restart{epoch: m.nextEpoch, waiters: waiters, id: id}
	m.restart = r
	var acts []Action
	if r.epoch > 0 {
		m.counters.Restarts++
		acts = append(acts, m.notify(Notify{Reloading: true, Status: fmt.Sprintf("hot restart to epoch %d", r.epoch)})...)
		if m.policy.Check {
			r.checking = true
			return append(acts, info(fmt.Sprintf("checking before hot restart to epoch %d", r.epoch), "epoch", r.epoch), RunCheck{Epoch: r.epoch})
		}
		if m.policy.Guard {
			r.checking = true
			return append(acts, RunCheck{Epoch: r.epoch})
		}
	}
	return append(acts, m.spawn(r)...)
}

func (m *Machine) spawn(r *restart) []Action {
	r.checking = false
	m.nextEpoch++
	return []Action{
		info(fmt.Sprintf("forking and execing new child process at epoch %d", r.epoch), "epoch", r.epoch),
		Spawn{Epoch: r.epoch},
	}
}

func (m *Machine) spawned(ev Spawned) []Action {
	gated := m.policy.InitGate && ev.Envoy
	m.envoy = m.envoy || ev.Envoy
	c := child{pid: ev.PID, epoch: ev.Epoch, started: m.policy.Clock(), ready: !m.policy.Readiness, initializing: gated}
	acts := []Action{info(fmt.Sprintf("forked new child process with PID=%d", ev.PID), "pid", ev.PID, "epoch", ev.Epoch)}
	// Envoy's flag is the new epoch's from now on: an older epoch whose
	// watcher has not seen it set yet (a watcher late on a loaded machine)
	// must not take the new epoch's setting for its own.
	for i := range m.children {
		if !m.children[i].initializing {
			m.children[i].initDone = true
		}
	}
	if m.policy.InitGate {
		acts = append(acts, WatchInit{Epoch: ev.Epoch, PID: ev.PID})
	}
	r := m.restart
	if r == nil || r.epoch != ev.Epoch {
		m.children = append(m.children, c)
		return acts
	}
	r.pid = ev.PID
	m.stamp(r.id, forkedAt)
	if !m.policy.Readiness && !gated {
		m.children = append(m.children, c)
		acts = append(acts, m.finishRestart(true, "")...)
		return append(acts, m.startQueued()...)
	}
	if m.policy.Readiness {
		c.watching = true
		acts = append(acts, WatchReady{Epoch: ev.Epoch, PID: ev.PID})
	}
	m.children = append(m.children, c)
	r.timed = true
	return append(acts, SetTimer{Timer: ReadyTimeoutTimer, After: m.policy.ReadyTimeout})
}

func (m *Machine) checkFinished(ev CheckFinished) []Action {
	r := m.restart
	if r == nil || !r.checking || r.epoch != ev.Epoch || m.phase != running {
		return nil // the restart it was for was abandoned by a shutdown
	}
	if ev.Err == "" {
		var acts []Action
		if m.policy.Check {
			acts = append(acts, info(fmt.Sprintf("check passed for epoch %d", ev.Epoch), "epoch", ev.Epoch))
		}
		return append(acts, m.spawn(r)...)
	}
	r.checking, r.refused = false, true
	if ev.Guard {
		m.counters.MemoryGuardRefusals++
		acts := []Action{Log{Level: slog.LevelError, Msg: fmt.Sprintf("memory guard refused hot restart to epoch %d: %s", ev.Epoch, ev.Err), Args: []any{"epoch", ev.Epoch}}}
		acts = append(acts, m.finishRestart(false, ev.Err)...)
		return append(acts, m.startQueued()...)
	}
	m.counters.ChecksFailed++
	acts := []Action{Log{Level: slog.LevelError, Msg: fmt.Sprintf("check refused hot restart to epoch %d: %s", ev.Epoch, ev.Err), Args: []any{"epoch", ev.Epoch}}}
	for _, line := range strings.Split(strings.TrimRight(ev.Output, "\n"), "\n") {
		if line != "" {
			acts = append(acts, Log{Level: slog.LevelError, Msg: "check output: " + line, Args: []any{"epoch", ev.Epoch}})
		}
	}
	acts = append(acts, m.finishRestart(false, "check failed: "+ev.Err)...)
	return append(acts, m.startQueued()...)
}

func (m *Machine) ready(epoch int) []Action {
	i := m.indexOfEpoch(epoch)
	if i < 0 || !m.children[i].watching {
		return nil // from a watch already stopped
	}
	c := &m.children[i]
	c.ready, c.watching = true, false
	return append(m.sendHeldUSR1(i), m.becameLive(i)...)
}

// becameLive follows up on child i being ready and done initializing: a
// held SIGUSR1, and the restart that started it.
func (m *Machine) becameLive(i int) []Action {
	c := &m.children[i]
	if !c.live() {
		return nil
	}
	acts := []Action{info(fmt.Sprintf("epoch %d is ready", c.epoch), "epoch", c.epoch, "pid", c.pid)}
	if r := m.restart; r != nil && r.epoch == c.epoch && r.failure == "" {
		acts = append(acts, m.finishRestart(true, "")...)
		acts = append(acts, m.startQueued()...)
	}
	return acts
}

// keeps reports whether a failure of epoch, the new epoch of the restart
// that just failed, leaves the older epochs serving.
func (m *Machine) keeps(epoch int) bool {
	return m.policy.KeepOnFailedRestart && epoch > 0 && m.phase == running && len(m.children) > 0
}

// keep follows a failed restart to epoch under --on-failed-restart keep:
// the older epochs keep serving and the next attempt reuses the number
// (Envoy requires consecutive epochs).
func (m *Machine) keep(epoch int) []Action {
	m.nextEpoch = epoch
	acts := []Action{Log{Level: slog.LevelWarn, Msg: fmt.Sprintf("keeping epoch %d serving; the next hot restart tries epoch %d again", m.children[len(m.children)-1].epoch, epoch),
		Args: []any{"epoch", epoch}}}
	return append(acts, m.startQueued()...)
}

// finishRestart ends the restart in progress (if any) with its outcome:
// it stops its check and ready timeout if they still run, answers its
// waiters and tells the service manager. It does not start a queued
// restart: the caller does, with startQueued, unless it is about to shut
// everything down.
func (m *Machine) finishRestart(ok bool, reason string) []Action {
	r := m.restart
	if r == nil {
		return nil
	}
	m.restart = nil
	var acts []Action
	if r.checking {
		acts = append(acts, StopCheck{Epoch: r.epoch})
	}
	if m.readyTimerArmed(r) {
		acts = append(acts, StopTimer{Timer: ReadyTimeoutTimer})
	}
	result := "ok"
	if !ok {
		result = "failed"
		if r.epoch > 0 {
			m.counters.RestartsFailed++
		}
	}
	m.last = &status.RestartStatus{Epoch: r.epoch, Result: result, Reason: reason, At: m.policy.Clock()}
	outcome := status.OutcomeOK
	switch {
	case r.refused:
		outcome = status.OutcomeRefused
	case !ok:
		outcome = status.OutcomeFailed
	default:
		m.stamp(r.id, readyAt)
	}
	acts = append(acts, m.closeRecord(r.id, r.epoch, outcome, reason)...)
	var rec status.Restart
	if p := m.record(r.id); p != nil {
		rec = *p
	}
	for _, w := range r.waiters {
		acts = append(acts, ReloadResult{Waiter: w, OK: ok, Epoch: r.epoch, Reason: reason, Restart: rec})
	}
	if m.phase == running {
		if ok {
			acts = append(acts, m.notify(Notify{Ready: true, Status: fmt.Sprintf("epoch %d live (PID=%d)", r.epoch, r.pid)})...)
		} else if r.epoch > 0 {
			acts = append(acts, m.notify(Notify{Ready: true, Status: fmt.Sprintf("hot restart to epoch %d failed: %s", r.epoch, reason)})...)
		}
	}
	return acts
}

// startQueued starts the restart that SIGHUPs or reloads queued during the
// one that just ended, if any. After a refused check it is worth trying
// again: the config may have been fixed meanwhile.
func (m *Machine) startQueued() []Action {
	q := m.queued
	if q == nil || m.restart != nil || m.phase != running || m.initializingChild() != nil {
		return nil
	}
	if s := m.slotHolder(); s != nil {
		if q.slotHeld {
			return nil
		}
		return m.holdForSlot(s)
	}
	m.queued = nil
	return append([]Action{info("starting the queued hot restart")}, m.beginRestart(q.waiters, q.id)...)
}

// abandonRestarts fails the restart in progress and the queued one, because
// the restarter is shutting down: every reload still waiting is answered
// with reason, and every readiness watcher is stopped.
func (m *Machine) abandonRestarts(reason string) []Action {
	restartReason := reason
	if r := m.restart; r != nil && r.failure != "" {
		restartReason = r.failure // it failed before the shutdown began
	}
	acts := m.finishRestart(false, restartReason)
	if q := m.queued; q != nil {
		m.queued = nil
		acts = append(acts, m.closeRecord(q.id, m.nextEpoch, status.OutcomeFailed, reason)...)
		for _, w := range q.waiters {
			acts = append(acts, ReloadResult{Waiter: w, Reason: reason})
		}
	}
	for i := range m.children {
		if c := &m.children[i]; c.watching {
			c.watching = false
			acts = append(acts, StopWatch{Epoch: c.epoch})
		}
	}
	return acts
}

// readyTimerArmed reports whether r's ReadyTimeoutTimer is set and has not
// fired: from its epoch's spawn (with a readiness probe or the init gate
// on an Envoy epoch) until it is done.
func (m *Machine) readyTimerArmed(r *restart) bool {
	return r.timed && r.pid != 0 && r.failure == ""
}

// spawnFailed: epoch could not be started (fork or exec failed). Under
// --on-failed-restart keep the older epochs keep serving; otherwise the
// abort answers the restart, with this reason (never READY=1 just before
// STOPPING=1).
func (m *Machine) spawnFailed(ev SpawnFailed) []Action {
	reason := "epoch could not be started: " + ev.Err
	acts := []Action{logf(slog.LevelError, "epoch %d: %s", ev.Epoch, ev.Err)}
	if m.keeps(ev.Epoch) {
		acts = append(acts, m.finishRestart(false, reason)...)
		return append(acts, m.keep(ev.Epoch)...)
	}
	if m.restart != nil {
		m.restart.failure = reason
	}
	return append(acts, m.abort()...)
}

// notReady keeps the probe's last reason, to name it if the epoch is never
// ready.
func (m *Machine) notReady(ev NotReady) []Action {
	r := m.restart
	if r == nil || r.epoch != ev.Epoch || r.pid == 0 {
		return nil
	}
	r.notReady = ev.Reason
	return []Action{Log{Level: slog.LevelDebug, Msg: fmt.Sprintf("epoch %d not ready yet: %s", ev.Epoch, ev.Reason), Args: []any{"epoch", ev.Epoch}}}
}

// watchChanged: a watched file's content changed; it asks for a hot
// restart as SIGHUP does, with the same check, gates and policy.
func (m *Machine) watchChanged(ev WatchChanged) []Action {
	acts := []Action{info("watched file changed: "+ev.Path, "path", ev.Path)}
	if m.phase != running {
		return append(acts, info("ignoring the change: shutdown in progress"))
	}
	return append(acts, m.requestRestart(trigger{name: "watch", path: ev.Path})...)
}

// reloadRequested: a hot restart asked for through the control socket,
// answered once, whatever happens.
func (m *Machine) reloadRequested(ev ReloadRequested) []Action {
	m.counters.Reloads++
	if m.phase != running {
		return []Action{ReloadResult{Waiter: ev.Waiter, Reason: "shutdown in progress"}}
	}
	return m.requestRestart(byReload, ev.Waiter)
}
