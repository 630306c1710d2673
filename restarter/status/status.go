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
}
