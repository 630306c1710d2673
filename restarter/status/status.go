// Package status is the schema of what `restarter status` prints (JSON):
// the restarter's state as its event loop's state machine sees it. Programs
// that read the restarter's status can decode into these types.
package status

import "time"

// Status is what `restarter status` prints: a snapshot of the restarter's
// state machine.
type Status struct {
	// Phase is running, terminating, killing or exited.
	Phase  string        `json:"phase"`
	Epochs []EpochStatus `json:"epochs"`
	// Restart is the hot restart in progress, if any.
	Restart *RestartStatus `json:"restart_in_progress,omitempty"`
	// Queued is true when a SIGHUP or reload came during the restart in
	// progress: one more restart follows it.
	Queued bool `json:"restart_queued"`
	// LastRestart is the outcome of the last finished restart (epoch 0's
	// start included).
	LastRestart *RestartStatus `json:"last_restart,omitempty"`
	Counters    Counters       `json:"counters"`
	// Restarts are the records of the last hot restart requests, oldest
	// first (at most 32).
	Restarts []Restart `json:"restarts"`
}

// EpochStatus is one live epoch.
type EpochStatus struct {
	Epoch   int       `json:"epoch"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// State is starting (not ready yet), live (the newest ready epoch) or
	// draining (an older one, handing over to a newer epoch).
	State string `json:"state"`
}

// RestartStatus is a hot restart: in progress (Stage set) or finished
// (Result set).
type RestartStatus struct {
	Epoch  int       `json:"epoch"`
	Stage  string    `json:"stage,omitempty"`  // checking, starting
	Result string    `json:"result,omitempty"` // ok, failed
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// Counters count what happened since the restarter started.
type Counters struct {
	SIGHUPs        int `json:"sighups"`
	Reloads        int `json:"reloads"`
	Restarts       int `json:"restarts"`
	RestartsFailed int `json:"restarts_failed"`
	ChecksFailed   int `json:"checks_failed"`
	// InitFlagsCleared counts INITIALIZING flags cleared after an epoch died
	// initializing (envoyproxy/envoy#33446).
	InitFlagsCleared int `json:"init_flags_cleared"`
	// SlotHolds counts hot restarts held because the epoch three before
	// the next one, whose domain socket ids it would bind, was still exiting.
	SlotHolds int `json:"slot_holds"`
	// MemoryGuardRefusals counts hot restarts the memory guard refused: the
	// cgroup had no room for a second Envoy.
	MemoryGuardRefusals int `json:"memory_guard_refusals"`
	// Outcomes counts the hot restart requests by outcome (ok, failed,
	// refused, coalesced); RestartsFailed counts failed and refused ones.
	Outcomes map[string]int `json:"outcomes"`
}

// Restart is the record of one hot restart request, as `restarter status`
// lists the last ones (Status.Restarts) and `restarter reload` answers with
// its own. The times of the stages not reached are absent.
type Restart struct {
	// ID numbers the requests, from 1, in the order they came.
	ID int `json:"id"`
	// Epoch is the epoch the restart started (or would have).
	Epoch int `json:"epoch"`
	// Trigger is SIGHUP, reload or watch (with WatchPath, the file whose
	// content changed).
	Trigger   string `json:"trigger"`
	WatchPath string `json:"watch_path,omitempty"`

	RequestedAt   time.Time `json:"requested_at"`
	ForkedAt      time.Time `json:"forked_at,omitzero"`
	InitializedAt time.Time `json:"initialized_at,omitzero"` // Envoy cleared INITIALIZING
	ReadyAt       time.Time `json:"ready_at,omitzero"`
	FinishedAt    time.Time `json:"finished_at,omitzero"`
	// DurationSeconds is FinishedAt - RequestedAt, once finished.
	DurationSeconds float64 `json:"duration_seconds"`

	// Outcome is ok, failed, refused (by the check or the memory guard) or
	// coalesced (into the restart CoalescedInto, queued already); empty
	// while the restart is in progress or queued.
	Outcome       string `json:"outcome,omitempty"`
	CoalescedInto int    `json:"coalesced_into,omitempty"`
	// Reason says why a restart failed or was refused.
	Reason string `json:"reason,omitempty"`
}

// Outcomes of a hot restart (Restart.Outcome).
const (
	OutcomeOK        = "ok"
	OutcomeFailed    = "failed"
	OutcomeRefused   = "refused"
	OutcomeCoalesced = "coalesced"
)
