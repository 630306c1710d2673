package server

import (
	"os"
	"syscall"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/hotrestart"
)

// This file is the epoch as a hot restart parent (Envoy's
// HotRestartingParent): what it does when its child asks.

// parentHandler answers the child epoch on the dispatcher goroutine.
type parentHandler struct{ s *Server }

func (h parentHandler) ShutdownAdmin() int64 {
	s := h.s
	s.onDispatcher(func() {
		s.log.Warn("main", "shutting down admin due to child startup")
		if s.statsFlush != nil {
			s.statsFlush.Stop()
			s.statsFlush = nil
		}
		if s.admin != nil {
			// Only the listening socket, as Envoy's closeSocket: open
			// admin connections stay with this epoch and are answered
			// until it exits.
			_ = s.admin.ln.Close()
		}
		s.log.Warn("main", "terminating parent process")
		if err := s.terminateParent(); err != nil {
			// A grandparent that died: fatal here, as in Envoy.
			s.fatal(err)
		}
	})
	return s.originalStart
}

func (h parentHandler) ListenSocket(req hotrestart.ListenSocketRequest) int {
	fd := -1
	h.s.onDispatcher(func() { fd = h.s.listenSocketForChild(req) })
	return fd
}

func (h parentHandler) DrainListeners() {
	s := h.s
	s.onDispatcher(func() {
		// Drain first, so a client that saw the log line sees the drain.
		s.drain.startDrainSequence(drainAll, func() {})
		s.log.Info("main", "closing and draining listeners")
		s.stopListeners(drainAll)
	})
}

func (h parentHandler) Terminate() {
	// Envoy signals itself, so the exit takes exactly the SIGTERM path.
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
}

func (h parentHandler) Stats() (gauges, counterDeltas map[string]uint64, connections uint64) {
	h.s.onDispatcher(func() {
		gauges, counterDeltas = h.s.stats.Export()
		connections = uint64(max(h.s.connections.Load(), 0))
	})
	return gauges, counterDeltas, connections
}
