package server

import (
	"encoding/json"
	"os"

	"github.com/envoy-restarter/restarter/internal/atomicfile"
)

// This file writes the --fake-state-path document, fakeenvoy's own report
// of an epoch's state for tests and the bench.

// State is the --fake-state-path document.
type State struct {
	PID               int               `json:"pid"`
	Epoch             uint32            `json:"epoch"`
	BaseID            uint32            `json:"base_id"`
	State             string            `json:"state"`
	HotRestartVersion string            `json:"hot_restart_version"`
	AdminAddress      string            `json:"admin_address"`
	Listeners         map[string]string `json:"listeners"`
}

func (s *Server) writeState(state string) error {
	if s.opts.FakeStatePath == "" {
		return nil
	}
	st := State{
		PID: os.Getpid(), Epoch: s.opts.RestartEpoch, BaseID: s.baseID, State: state,
		HotRestartVersion: s.hotRestartVersion(), Listeners: map[string]string{},
	}
	if s.admin != nil {
		st.AdminAddress = s.admin.ln.Addr().String()
	}
	for _, l := range s.listeners {
		st.Listeners[l.cfg.Name] = l.sockets[0].local()
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.opts.FakeStatePath, append(b, '\n'))
}
