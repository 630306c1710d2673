// Package stats is fakeenvoy's stats store: counters and gauges by name,
// and Envoy's hot restart stats transfer between them. A parent exports
// (Envoy's HotRestartingParent exportStatsToChild); a child merges with a
// Merger (Envoy's StatMerger), which holds the parent's gauge values beside
// the child's own until the parent is terminated.
package stats

import (
	"sort"
	"sync"
	"sync/atomic"
)

// ImportMode says whether a child adds a parent's value of a gauge to its
// own, as Envoy's Gauge::ImportMode does.
type ImportMode uint32

const (
	// Uninitialized: a gauge the child learnt of from its parent and has
	// not declared itself; the parent's value counts.
	Uninitialized ImportMode = iota
	// Accumulate: the parent's value is added to the child's own.
	Accumulate
	// NeverImport: the parent's value is ignored (the epoch, the state).
	NeverImport
)

// Counter only grows. Value is the total; the hot restart transfer and the
// stats flush see the increase since the last latch.
type Counter struct {
	value, latched atomic.Uint64
}

// Add adds n.
func (c *Counter) Add(n uint64) { c.value.Add(n) }

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Value is the total.
func (c *Counter) Value() uint64 { return c.value.Load() }

// latch returns the increase since the previous latch.
func (c *Counter) latch() uint64 {
	v := c.value.Load()
	return v - c.latched.Swap(v)
}

// Gauge goes up and down. Its value is this epoch's own plus what its
// parent last reported, while a Merger holds that.
type Gauge struct {
	own, parent atomic.Uint64
	used        atomic.Bool
	mode        atomic.Uint32
}

// Set sets this epoch's own part.
func (g *Gauge) Set(v uint64) {
	g.own.Store(v)
	g.used.Store(true)
}

// Add adds n to this epoch's own part.
func (g *Gauge) Add(n uint64) {
	g.own.Add(n)
	g.used.Store(true)
}

// Sub takes n from this epoch's own part, which never goes below zero.
func (g *Gauge) Sub(n uint64) {
	for {
		v := g.own.Load()
		if g.own.CompareAndSwap(v, v-min(v, n)) {
			return
		}
	}
}

// Inc adds one; Dec takes one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec takes one.
func (g *Gauge) Dec() { g.Sub(1) }

// Value is this epoch's own part plus the parent's.
func (g *Gauge) Value() uint64 { return g.own.Load() + g.parent.Load() }

// Mode is the gauge's import mode.
func (g *Gauge) Mode() ImportMode { return ImportMode(g.mode.Load()) }

// Store holds an epoch's stats. It is safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	counters map[string]*Counter
	gauges   map[string]*Gauge
}

// New returns an empty store.
func New() *Store {
	return &Store{counters: map[string]*Counter{}, gauges: map[string]*Gauge{}}
}

// Counter returns the counter called name, made on first use.
func (s *Store) Counter(name string) *Counter {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counters[name]
	if c == nil {
		c = &Counter{}
		s.counters[name] = c
	}
	return c
}

// Gauge returns the gauge called name, declaring its import mode. A gauge
// first made by a merge and now declared NeverImport drops the parent's
// value, as Envoy's mergeImportMode does.
func (s *Store) Gauge(name string, mode ImportMode) *Gauge {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gaugeLocked(name, mode)
}

func (s *Store) gaugeLocked(name string, mode ImportMode) *Gauge {
	g := s.gauges[name]
	if g == nil {
		g = &Gauge{}
		g.mode.Store(uint32(mode))
		s.gauges[name] = g
		return g
	}
	if mode != Uninitialized && g.Mode() == Uninitialized {
		g.mode.Store(uint32(mode))
		if mode == NeverImport {
			g.parent.Store(0)
			g.used.Store(false)
		}
	}
	return g
}

// Stat is one name and value, as /stats prints it.
type Stat struct {
	Name  string
	Value uint64
}

// All is every counter and gauge, sorted by name as Envoy's /stats sorts
// its text output.
func (s *Store) All() []Stat {
	s.mu.Lock()
	all := make([]Stat, 0, len(s.counters)+len(s.gauges))
	for name, c := range s.counters {
		all = append(all, Stat{name, c.Value()})
	}
	for name, g := range s.gauges {
		all = append(all, Stat{name, g.Value()})
	}
	s.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}

// Latch is the stats flush's snapshot: every counter's increase so far is
// taken, so a later Export carries only what came after it.
func (s *Store) Latch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.counters {
		c.latch()
	}
}

// Export is the parent's side of the transfer: the value of every gauge
// that was used, and the increase of every counter since the last latch,
// where there is one (only Add moves a counter, so an increase means used).
func (s *Store) Export() (gauges, counterDeltas map[string]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gauges, counterDeltas = map[string]uint64{}, map[string]uint64{}
	for name, g := range s.gauges {
		if g.used.Load() {
			gauges[name] = g.Value()
		}
	}
	for name, c := range s.counters {
		if d := c.latch(); d > 0 {
			counterDeltas[name] = d
		}
	}
	return gauges, counterDeltas
}

// Merger is a child's side of the transfer, from its first stats exchange
// until it terminates its parent.
type Merger struct {
	store   *Store
	parents map[string]bool // gauges holding a parent's value
}

// NewMerger merges into store.
func NewMerger(store *Store) *Merger {
	return &Merger{store: store, parents: map[string]bool{}}
}

// Merge takes one stats reply: counter increases are added for good; each
// gauge the child does not declare NeverImport holds the parent's value
// beside its own.
func (m *Merger) Merge(gauges, counterDeltas map[string]uint64) {
	for name, d := range counterDeltas {
		m.store.Counter(name).Add(d)
	}
	m.store.mu.Lock()
	defer m.store.mu.Unlock()
	for name, v := range gauges {
		g := m.store.gaugeLocked(name, Uninitialized)
		if g.Mode() == NeverImport {
			continue
		}
		g.parent.Store(v)
		m.parents[name] = true
	}
}

// Retain keeps the parent's value of the gauge after Close, as Envoy keeps
// server.hot_restart_generation.
func (m *Merger) Retain(name string) {
	m.store.mu.Lock()
	defer m.store.mu.Unlock()
	delete(m.parents, name)
}

// Close ends the transfer when the parent is terminated: every gauge drops
// the parent's value, but for those retained.
func (m *Merger) Close() {
	m.store.mu.Lock()
	defer m.store.mu.Unlock()
	for name := range m.parents {
		m.store.gauges[name].parent.Store(0)
	}
	m.parents = map[string]bool{}
}
