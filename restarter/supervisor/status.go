package supervisor

import "time"

// Status is what `restarter status` prints: a snapshot of the Machine.
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

// Status returns a snapshot of the machine's state.
func (m *Machine) Status() Status {
	s := Status{Phase: phaseNames[m.phase], Epochs: []EpochStatus{}, Queued: m.queued != nil, Counters: m.counters}
	newestReady := -1
	for _, c := range m.children {
		if c.live() {
			newestReady = c.epoch
		}
	}
	for _, c := range m.children {
		state := "draining"
		switch {
		case !c.live():
			state = "starting"
		case c.epoch == newestReady:
			state = "live"
		}
		s.Epochs = append(s.Epochs, EpochStatus{Epoch: c.epoch, PID: c.pid, Started: c.started, State: state})
	}
	if r := m.restart; r != nil {
		stage := "starting"
		if r.checking {
			stage = "checking"
		}
		s.Restart = &RestartStatus{Epoch: r.epoch, Stage: stage}
	}
	if m.last != nil {
		last := *m.last
		s.LastRestart = &last
	}
	return s
}

// RestartPending reports whether a hot restart is in progress, and whether
// another one is queued (behind it, an initializing epoch or an epoch still
// exiting): the event loop's view of the machine being busy.
func (m *Machine) RestartPending() (inProgress, queued bool) {
	return m.restart != nil, m.queued != nil
}
