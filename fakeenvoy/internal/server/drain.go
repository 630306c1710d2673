package server

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// drainDirection is Envoy's Network::DrainDirection: the listeners a drain
// covers. A wider drain covers every narrower one.
type drainDirection int

const (
	drainNone        drainDirection = iota
	drainInboundOnly                // listeners with traffic_direction INBOUND
	drainAll
)

// drainManager is Envoy's server DrainManagerImpl, the one drain of an
// epoch: a hot restart parent told to drain and /drain_listeners both
// start its sequence. A drain sequence is per direction: it starts a clock
// that the connection managers' drain decisions read, and runs its
// completion callbacks once the drain time is over.
type drainManager struct {
	strategy  string // "gradual" or "immediate"
	drainTime time.Duration
	random    func(n int64) int64 // rand.Int64N unless a test sets it
	// healthCheckFailed is the server's health check state
	// (/healthcheck/fail); nil reads as passing.
	healthCheckFailed *atomic.Bool
	// post runs a completion on the dispatcher; nil runs it in place.
	post func(func())

	mu     sync.Mutex
	widest drainDirection // drainNone until a sequence starts
	began  map[drainDirection]time.Time
	timers map[drainDirection]*time.Timer // armed until the direction's drain time is over
	// completions are shared by the directions, as in Envoy: the first
	// drain time to end runs them all.
	completions []func()
}

// draining says whether a drain covering direction has started.
func (d *drainManager) draining(direction drainDirection) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.widest != drainNone && direction <= d.widest
}

// startDrainSequence starts draining direction, or joins the drain under
// way when one covers it already. complete runs when the drain time of
// direction's own sequence is over, at once if it has none running.
func (d *drainManager) startDrainSequence(direction drainDirection, complete func()) {
	d.mu.Lock()
	if d.widest == drainNone || direction > d.widest {
		if d.began == nil {
			d.began, d.timers = map[drainDirection]time.Time{}, map[drainDirection]*time.Timer{}
		}
		d.began[direction] = time.Now()
		d.widest = direction
		d.timers[direction] = time.AfterFunc(d.drainTime, func() { d.run(func() { d.drainTimeOver(direction) }) })
	}
	if d.timers[direction] != nil {
		d.completions = append(d.completions, complete)
		complete = nil
	}
	d.mu.Unlock()
	if complete != nil {
		complete()
	}
}

// drainTimeOver runs every pending completion (Envoy's drain tick timer).
func (d *drainManager) drainTimeOver(direction drainDirection) {
	d.mu.Lock()
	completions := d.completions
	d.completions = nil
	delete(d.timers, direction)
	d.mu.Unlock()
	for _, f := range completions {
		f()
	}
}

func (d *drainManager) run(f func()) {
	if d.post == nil {
		f()
		return
	}
	d.post(f)
}

// stop disarms the drain timers: the epoch is exiting.
func (d *drainManager) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.timers {
		t.Stop()
	}
}

// drainClose is Envoy's DrainManagerImpl::drainClose for a connection
// manager whose listener's traffic is direction: whether this response
// should ask the client to close. Not draining in that direction: never.
// immediate: always. gradual: with probability elapsed/drain time over
// direction's own sequence, so closes spread over the drain time, always
// once it is over. A direction covered only by a wider drain has no clock
// of its own, and Envoy then reads a deadline of zero: it always closes.
func (d *drainManager) drainClose(direction drainDirection) bool {
	d.mu.Lock()
	widest := d.widest
	began, own := d.began[direction]
	d.mu.Unlock()
	if widest == drainNone || direction == drainNone || direction > widest {
		return false
	}
	if d.strategy == "immediate" || !own {
		return true
	}
	elapsed := time.Since(began)
	if d.drainTime <= 0 || elapsed >= d.drainTime {
		return true
	}
	random := d.random
	if random == nil {
		random = rand.Int64N
	}
	return elapsed > time.Duration(random(int64(d.drainTime)))
}

// drainDecision is the drain decision of one connection manager, Envoy's
// DrainDecision as a listener's or the admin's sees it: the server's drain
// in its listener's direction and, unless the listener's drain_type is
// MODIFY_ONLY, the server's failed health check, which closes every
// connection at once.
type drainDecision struct {
	manager    *drainManager
	direction  drainDirection
	modifyOnly bool
}

func (d drainDecision) drainClose() bool {
	m := d.manager
	if !d.modifyOnly && m.healthCheckFailed != nil && m.healthCheckFailed.Load() {
		return true
	}
	return m.drainClose(d.direction)
}

// adminDrain is the drain decision of the admin's connection manager:
// Envoy gives it the server's drain manager, of type MODIFY_ONLY, and the
// admin listener has no traffic direction, so its connections drain-close
// in a drain of All and never for a failed health check.
func adminDrain(m *drainManager) drainDecision {
	return drainDecision{manager: m, direction: drainAll, modifyOnly: true}
}

// listenerDrain is the drain decision of a listener's connection manager:
// InboundOnly for an INBOUND listener, All for any other.
func listenerDrain(m *drainManager, inbound, modifyOnly bool) drainDecision {
	direction := drainAll
	if inbound {
		direction = drainInboundOnly
	}
	return drainDecision{manager: m, direction: direction, modifyOnly: modifyOnly}
}

// drainListeners is /drain_listeners as current Envoy does it: a drain of
// direction starts (connections are drain-closed from now on) and the
// listeners it covers stop accepting, at once, or when the drain time is
// over with graceful (they accept new connections until then), or never
// with skip_exit. A graceful drain already covered by one under way is
// left alone.
func (s *Server) drainListeners(direction drainDirection, graceful, skipExit bool) {
	stop := func() {
		if !skipExit {
			s.stopListeners(direction)
		}
	}
	if !graceful {
		s.drain.startDrainSequence(direction, func() {})
		stop()
		return
	}
	if !s.drain.draining(direction) {
		s.drain.startDrainSequence(direction, stop)
	}
}
