package server

import (
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/stats"
)

// The stats Envoy has that fakeenvoy can mean, with Envoy's import modes
// (ALL_SERVER_STATS in server.h, ALL_HTTP_CONN_MAN_STATS).
const (
	statEpoch             = "server.hot_restart_epoch"
	statGeneration        = "server.hot_restart_generation"
	statLive              = "server.live"
	statParentConnections = "server.parent_connections"
	statState             = "server.state"
	statTotalConnections  = "server.total_connections"
)

// serverStats are the server gauges; server.hot_restart_generation is
// made only with hot restart enabled, as Envoy's hot restart parent makes it.
type serverStats struct {
	epoch, live, parentConnections, state, totalConnections *stats.Gauge
}

func newServerStats(st *stats.Store) serverStats {
	return serverStats{
		epoch:             st.Gauge(statEpoch, stats.NeverImport),
		live:              st.Gauge(statLive, stats.NeverImport),
		parentConnections: st.Gauge(statParentConnections, stats.Accumulate),
		state:             st.Gauge(statState, stats.NeverImport),
		totalConnections:  st.Gauge(statTotalConnections, stats.Accumulate),
	}
}

// httpStats are an HTTP connection manager's stats, named
// http.<stat_prefix>.*: listeners with the same prefix share them.
type httpStats struct {
	cxActive, rqActive *stats.Gauge
	cxTotal, rqTotal   *stats.Counter
}

func newHTTPStats(st *stats.Store, statPrefix string) *httpStats {
	p := "http." + statPrefix + "."
	return &httpStats{
		cxActive: st.Gauge(p+"downstream_cx_active", stats.Accumulate),
		cxTotal:  st.Counter(p + "downstream_cx_total"),
		rqActive: st.Gauge(p+"downstream_rq_active", stats.Accumulate),
		rqTotal:  st.Counter(p + "downstream_rq_total"),
	}
}

// updateServerStats is Envoy's updateServerStats, run at each stats flush
// and when the workers start: the stats exchange with the parent (merging
// its stats until it is terminated), then the server gauges. Like Envoy,
// total_connections counts the parent's connections in this epoch's own
// part, and its accumulating gauge also holds the parent's total.
func (s *Server) updateServerStats() error {
	var parentConnections uint64
	if s.hr != nil {
		reply, ok, err := s.hr.Child.ParentStats()
		if err != nil {
			return err
		}
		if ok {
			if s.merger == nil {
				s.merger = stats.NewMerger(s.stats)
			}
			s.merger.Merge(reply.Gauges, reply.CounterDeltas)
			parentConnections = reply.NumConnections
		}
	}
	own := uint64(max(s.connections.Load(), 0))
	s.serverStats.parentConnections.Set(parentConnections)
	s.serverStats.totalConnections.Set(own + parentConnections)
	s.serverStats.state.Set(stateCodes[s.serverState()])
	return nil
}

// terminateParent tells the parent to exit and ends the stats transfer:
// the parent's share of every gauge is dropped but for the hot restart
// generation, which keeps counting epochs (Envoy's
// sendParentTerminateRequest).
func (s *Server) terminateParent() error {
	err := s.hr.Child.TerminateParent()
	if s.merger != nil {
		s.merger.Retain(statGeneration)
		s.merger.Close()
		s.merger = nil
	}
	return err
}
