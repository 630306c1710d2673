package machine

import (
	"fmt"
	"log/slog"
	"strconv"
)

// This file is what a child's death means: Exited, in every phase. The
// death is logged, the restart it belonged to (if any) learns why it
// failed, and then one verdict decides what follows (see verdict).

// exited handles the reaped child ev.PID.
func (m *Machine) exited(ev Exited) []Action {
	i := m.indexOf(ev.PID)
	if i < 0 {
		// Only an orphan reaped as subreaper can get here; it is not an epoch.
		return []Action{logf(slog.LevelDebug, "reaped PID=%d, which is not an epoch", ev.PID)}
	}
	c := m.children[i]
	m.children = append(m.children[:i], m.children[i+1:]...)
	how, acts := reportExit(ev, c.epoch)
	if ev.LastError != "" {
		acts = append(acts, Log{Level: slog.LevelWarn, Msg: fmt.Sprintf("epoch %d (PID=%d) last logged: %q", c.epoch, ev.PID, ev.LastError), Args: []any{"epoch", c.epoch, "pid", ev.PID}})
	}
	if c.watching {
		acts = append(acts, StopWatch{Epoch: c.epoch})
	}
	d := death{child: c, ev: ev, how: how, clean: ev.Signal == 0 && ev.Code == 0, hold: m.phase == running && ev.Signal.IsStop()}
	if r := m.restart; r != nil && r.pid == ev.PID {
		d.failed = true
		acts = append(acts, m.restartDied(r, d)...)
	}
	if m.olderHeldBy == ev.PID && len(m.children) > 0 {
		acts = append(acts, StopTimer{Timer: OlderTermTimer})
		acts = append(acts, m.termOlder(fmt.Sprintf("epoch %d (PID=%d) is gone; sending TERM to the older epochs", c.epoch, ev.PID))...)
	}
	if m.stopping() && !d.clean && !ev.Signal.IsStop() {
		acts = append(acts, m.failedDuringStop(c.epoch, ev.PID, how)...)
	}
	return append(acts, m.verdict(d)...)
}

// death is one reaped epoch, as exited sees it.
type death struct {
	child  child
	ev     Exited
	how    string // "exited with code=C" or "was killed with signal=S"
	clean  bool   // exit code 0
	hold   bool   // killed by a stop signal while running: perhaps a group stop
	failed bool   // the new epoch of the restart in progress, not ready yet
}

// reportExit logs how the child of epoch ended, in hot-restarter.py's words.
func reportExit(ev Exited, epoch int) (how string, acts []Action) {
	if ev.Signal != 0 {
		how = fmt.Sprintf("was killed with signal=%d", int(ev.Signal))
		return how, []Action{Log{Level: slog.LevelWarn, Msg: fmt.Sprintf("PID=%d %s", ev.PID, how),
			Args: []any{"pid", ev.PID, "epoch", epoch, "signal", int(ev.Signal), "signal_name", ev.Signal.String()}}}
	}
	level := slog.LevelInfo
	if ev.Code != 0 {
		level = slog.LevelWarn
	}
	how = fmt.Sprintf("exited with code=%d", ev.Code)
	return how, []Action{Log{Level: level, Msg: fmt.Sprintf("PID=%d %s", ev.PID, how), Args: []any{"pid", ev.PID, "epoch", epoch, "code", ev.Code}}}
}

// restartDied records why restart r failed: its new epoch died before it
// was ready. It is answered now when nothing else will (a clean exit, a
// shutdown already under way, or --on-failed-restart keep); otherwise the
// abort or shutdown that follows answers it with this reason, so that the
// service manager never sees READY=1 just before STOPPING=1.
func (m *Machine) restartDied(r *restart, d death) []Action {
	reason := r.failure
	if reason == "" {
		reason = fmt.Sprintf("epoch %d %s before it was ready", d.child.epoch, d.how)
		if d.ev.LastError != "" {
			reason += ": " + strconv.Quote(d.ev.LastError)
		}
	}
	if d.clean && m.nextEpoch == d.child.epoch+1 {
		// It never served: the next epoch's parent is the one before it, and
		// Envoy requires consecutive epochs, so the number is tried again.
		m.nextEpoch = d.child.epoch
	}
	if d.clean || m.phase != running || (m.keeps(d.child.epoch) && !d.hold) {
		return m.finishRestart(false, reason)
	}
	var acts []Action
	if m.readyTimerArmed(r) {
		acts = append(acts, StopTimer{Timer: ReadyTimeoutTimer})
	}
	r.failure = reason
	return acts
}

// verdict decides what follows a death, first match wins:
//
//	killed by a stop signal while running   hold it GroupStopGrace (see GroupStopGrace)
//	failed restart, --on-failed-restart keep the older epochs keep serving
//	abnormal while running                  abort: KILL everything, exit 1
//	other epochs left                       heal its flag; start a queued restart
//	none left, a verdict held               wait for it
//	none left, running                      exit 0
//	none left, terminating                  exit 0, or 1 if one failed during the stop
//	none left, killing                      exit 1
func (m *Machine) verdict(d death) []Action {
	c, pid := d.child, d.ev.PID
	switch {
	case d.hold:
		m.held = append(m.held, pid)
		if d.failed {
			m.restart.heldInitializing = c.initializing
		}
		return []Action{
			info(fmt.Sprintf("PID=%d was killed by %s, perhaps sent to the whole process group: waiting up to %s for the restarter's own before calling it abnormal",
				pid, d.ev.Signal, GroupStopGrace), "pid", pid, "epoch", c.epoch),
			SetTimer{Timer: GroupStopTimer, After: GroupStopGrace}}
	case d.failed && m.keeps(c.epoch):
		return append(m.healIfInitializing(c, pid), m.keep(c.epoch)...)
	case m.phase == running && !d.clean:
		return m.abort()
	case len(m.children) > 0:
		return append(m.healIfInitializing(c, pid), m.startQueued()...)
	case m.phase == running && len(m.held) > 0:
		return nil // the verdict on the held epochs decides
	case m.phase == running:
		return m.exit(ExitClean, "exiting due to lack of child processes")
	case m.stopping() && m.code != ExitClean:
		return m.exit(m.code, "all children exited; "+m.stopFailures)
	case m.stopping():
		return m.exit(ExitClean, "all children exited cleanly")
	default: // killing
		return m.exit(m.code, "all children reaped")
	}
}

// healIfInitializing heals the INITIALIZING flag c may have left set.
func (m *Machine) healIfInitializing(c child, pid int) []Action {
	if !c.initializing {
		return nil
	}
	return m.heal(c.epoch, pid)
}
