package machine

import (
	"time"

	"github.com/envoy-restarter/restarter/restarter/status"
)

// This file is the restart history: every hot restart request gets a
// record, from its request to its outcome; the last historySize are kept
// for `restarter status`, and each finished one is handed to the OS layer
// (Recorded) for the metrics.

// historySize is how many records are kept.
const historySize = 32

// trigger is what asked for a hot restart.
type trigger struct {
	name string // SIGHUP, reload, watch
	path string // the watched file, for watch
}

var (
	bySIGHUP = trigger{name: "SIGHUP"}
	byReload = trigger{name: "reload"}
)

// describe names the request in the log: "SIGHUP", "reload request".
func (t trigger) describe() string {
	switch t.name {
	case "reload":
		return "reload request"
	case "watch":
		return "change of " + t.path
	}
	return t.name
}

// Recorded hands the OS layer a record that just got its outcome.
type Recorded struct{ Restart status.Restart }

func (Recorded) isAction() {}

// newRecord starts the record of a request for epoch, and returns its id.
func (m *Machine) newRecord(t trigger, epoch int) int {
	m.lastRecord++
	m.history = append(m.history, status.Restart{ID: m.lastRecord, Epoch: epoch, Trigger: t.name, WatchPath: t.path, RequestedAt: m.policy.Clock()})
	if len(m.history) > historySize {
		m.history = m.history[len(m.history)-historySize:]
	}
	return m.lastRecord
}

// record returns the record id, nil when it is gone from the history (or id
// is 0: epoch 0's start is no request).
func (m *Machine) record(id int) *status.Restart {
	for i := len(m.history) - 1; i >= 0 && id != 0; i-- {
		if m.history[i].ID == id {
			return &m.history[i]
		}
	}
	return nil
}

// stamp sets a stage's time in record id, once.
func (m *Machine) stamp(id int, stage func(*status.Restart) *time.Time) {
	if rec := m.record(id); rec != nil && stage(rec).IsZero() {
		*stage(rec) = m.policy.Clock()
	}
}

func forkedAt(r *status.Restart) *time.Time      { return &r.ForkedAt }
func initializedAt(r *status.Restart) *time.Time { return &r.InitializedAt }
func readyAt(r *status.Restart) *time.Time       { return &r.ReadyAt }

// closeRecord gives record id its outcome; the epoch it ended with is
// epoch (a queued restart learns its number when it starts).
func (m *Machine) closeRecord(id, epoch int, outcome, reason string) []Action {
	rec := m.record(id)
	if rec == nil {
		return nil
	}
	now := m.policy.Clock()
	rec.Epoch, rec.Outcome, rec.Reason, rec.FinishedAt = epoch, outcome, reason, now
	rec.DurationSeconds = now.Sub(rec.RequestedAt).Seconds()
	m.countOutcome(outcome)
	return []Action{Recorded{Restart: *rec}}
}

// coalesced records a request folded into the queued restart into.
func (m *Machine) coalesced(t trigger, into int) []Action {
	id := m.newRecord(t, m.nextEpoch)
	rec := m.record(id)
	rec.CoalescedInto = into
	return m.closeRecord(id, m.nextEpoch, status.OutcomeCoalesced, "")
}

func (m *Machine) countOutcome(outcome string) {
	if m.counters.Outcomes == nil {
		m.counters.Outcomes = map[string]int{}
	}
	m.counters.Outcomes[outcome]++
}
