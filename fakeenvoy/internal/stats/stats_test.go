package stats

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
)

// Given a parent with an accumulating gauge, a NeverImport gauge and a
// counter, when a child merges two exchanges and then terminates the
// parent, then the child's gauge is its own plus the parent's latest value
// until then and its own after, the NeverImport gauge never moves, the
// counter keeps every increase, and the retained gauge keeps the parent's
// share: Envoy's StatMerger, as its hot restart test pins it.
func TestTransferFromParentToChild(t *testing.T) {
	parent, child := New(), New()
	parent.Gauge("server.hot_restart_generation", Accumulate).Inc()
	parent.Gauge("server.hot_restart_epoch", NeverImport).Set(0)
	parent.Gauge("http.router.downstream_cx_active", Accumulate).Set(3)
	parent.Counter("http.router.downstream_rq_total").Add(5)

	child.Gauge("server.hot_restart_generation", Accumulate).Inc()
	child.Gauge("server.hot_restart_epoch", NeverImport).Set(1)
	child.Gauge("http.router.downstream_cx_active", Accumulate).Set(1)
	child.Counter("http.router.downstream_rq_total").Add(2)

	m := NewMerger(child)
	m.Merge(parent.Export())
	want := []Stat{
		{"http.router.downstream_cx_active", 4},
		{"http.router.downstream_rq_total", 7},
		{"server.hot_restart_epoch", 1},
		{"server.hot_restart_generation", 2},
	}
	assert.Empty(t, cmp.Diff(want, child.All()))

	// The parent drains: its gauge falls, one more request is counted.
	parent.Gauge("http.router.downstream_cx_active", Accumulate).Set(1)
	parent.Counter("http.router.downstream_rq_total").Inc()
	m.Merge(parent.Export())
	assert.Equal(t, uint64(2), child.Gauge("http.router.downstream_cx_active", Accumulate).Value())
	assert.Equal(t, uint64(8), child.Counter("http.router.downstream_rq_total").Value(), "each increase once")

	m.Retain("server.hot_restart_generation")
	m.Close()
	want = []Stat{
		{"http.router.downstream_cx_active", 1},
		{"http.router.downstream_rq_total", 8},
		{"server.hot_restart_epoch", 1},
		{"server.hot_restart_generation", 2},
	}
	assert.Empty(t, cmp.Diff(want, child.All()))
}

// Counters latched by a stats flush before the export are not transferred:
// Envoy's parent hands over only what it counted since its last flush.
func TestExportCarriesOnlyIncreasesSinceTheLastLatch(t *testing.T) {
	s := New()
	c := s.Counter("c")
	c.Add(10)
	s.Latch()
	c.Add(2)
	_, deltas := s.Export()
	assert.Equal(t, map[string]uint64{"c": 2}, deltas)
	_, deltas = s.Export()
	assert.Empty(t, deltas, "nothing new since the export")
	assert.Equal(t, uint64(12), c.Value())
}

// A gauge learnt from the parent before the child declares it: the
// parent's value counts, and declaring it NeverImport afterwards drops it.
func TestGaugeLearntFromParentThenDeclared(t *testing.T) {
	child := New()
	m := NewMerger(child)
	m.Merge(map[string]uint64{"a": 3, "b": 4}, nil)
	assert.Equal(t, uint64(3), child.Gauge("a", Accumulate).Value())
	assert.Equal(t, uint64(0), child.Gauge("b", NeverImport).Value())
	m.Merge(map[string]uint64{"b": 9}, nil)
	assert.Equal(t, uint64(0), child.Gauge("b", NeverImport).Value(), "NeverImport stays out")
	gauges, _ := child.Export()
	assert.NotContains(t, gauges, "a", "a gauge only merged was never used by this epoch")
}

func TestGaugeSubStopsAtZero(t *testing.T) {
	g := New().Gauge("g", Accumulate)
	g.Add(2)
	g.Sub(5)
	assert.Equal(t, uint64(0), g.Value())
}
