package machine

import "github.com/envoy-restarter/restarter/restarter/status"

// Status returns a snapshot of the machine's state.
func (m *Machine) Status() status.Status {
	s := status.Status{Phase: phaseNames[m.phase], Epochs: []status.EpochStatus{}, Queued: m.queued != nil, Counters: m.counters}
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
		s.Epochs = append(s.Epochs, status.EpochStatus{Epoch: c.epoch, PID: c.pid, Started: c.started, State: state})
	}
	if r := m.restart; r != nil {
		stage := "starting"
		if r.checking {
			stage = "checking"
		}
		s.Restart = &status.RestartStatus{Epoch: r.epoch, Stage: stage}
	}
	s.Restarts = append([]status.Restart{}, m.history...)
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
