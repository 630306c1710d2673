package server

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/config"
)

// These mirror source/server/drain_manager_impl.cc (DrainManagerImpl's
// drainClose, draining and startDrainSequence) and test/server/
// drain_manager_impl_test.cc.

// Gradual drain closes with probability elapsed/drain time: the random
// draw in [0, drain time) is compared with the time elapsed.
func TestGradualDrainPacesConnectionClose(t *testing.T) {
	var draw int64
	d := &drainManager{strategy: "gradual", drainTime: time.Hour, random: func(n int64) int64 { return draw * n / 100 }}
	assert.False(t, d.drainClose(drainAll), "not draining")

	d.startDrainSequence(drainAll, func() {})
	d.began[drainAll] = time.Now().Add(-30 * time.Minute) // half-way through
	draw = 40
	assert.True(t, d.drainClose(drainAll), "a draw below the elapsed share closes")
	draw = 60
	assert.False(t, d.drainClose(drainAll), "a draw above it keeps the connection")

	d.began[drainAll] = time.Now().Add(-2 * time.Hour)
	draw = 99
	assert.True(t, d.drainClose(drainAll), "past the drain time every response closes")
	d.stop()
}

func TestImmediateAndZeroDrainCloseAlways(t *testing.T) {
	never := func(n int64) int64 { return n - 1 }
	for _, d := range []*drainManager{
		{strategy: "immediate", drainTime: time.Hour, random: never},
		{strategy: "gradual", drainTime: 0, random: never},
	} {
		d.startDrainSequence(drainAll, func() {})
		assert.True(t, d.drainClose(drainAll), "%s, %v", d.strategy, d.drainTime)
		d.stop()
	}
}

// An InboundOnly drain covers INBOUND listeners only; a drain of All covers
// both, and a listener whose direction has no sequence of its own reads
// Envoy's zero deadline: it closes at once, even with a gradual strategy.
func TestDrainDirections(t *testing.T) {
	never := func(n int64) int64 { return n - 1 }
	d := &drainManager{strategy: "gradual", drainTime: time.Hour, random: never}
	defer d.stop()

	d.startDrainSequence(drainInboundOnly, func() {})
	assert.True(t, d.draining(drainInboundOnly))
	assert.False(t, d.draining(drainAll))
	assert.False(t, d.drainClose(drainInboundOnly), "gradual, just begun")
	assert.False(t, d.drainClose(drainAll), "outbound listeners are not drained")
	assert.False(t, d.drainClose(drainNone))

	d.startDrainSequence(drainAll, func() {})
	assert.True(t, d.draining(drainAll))
	assert.False(t, d.drainClose(drainAll), "gradual, just begun")
	assert.False(t, d.drainClose(drainInboundOnly), "its own sequence paces it")

	e := &drainManager{strategy: "gradual", drainTime: time.Hour, random: never}
	defer e.stop()
	e.startDrainSequence(drainAll, func() {})
	assert.True(t, e.draining(drainInboundOnly), "All covers InboundOnly")
	assert.True(t, e.drainClose(drainInboundOnly), "no InboundOnly sequence: a deadline of zero")
}

// A failed health check drain-closes every connection of a DEFAULT
// listener at once, draining or not; MODIFY_ONLY listeners and the admin
// (the server's own manager is MODIFY_ONLY) only in a drain.
func TestHealthCheckFailureDrainsDefaultListenersOnly(t *testing.T) {
	var failed atomic.Bool
	d := &drainManager{strategy: "gradual", drainTime: time.Hour, healthCheckFailed: &failed}
	inbound, outbound := listenerDrain(d, true, false), listenerDrain(d, false, false)
	modifyOnly := listenerDrain(d, false, true)
	admin := adminDrain(d)
	for _, dd := range []drainDecision{inbound, outbound, modifyOnly, admin} {
		assert.False(t, dd.drainClose())
	}
	failed.Store(true)
	assert.True(t, inbound.drainClose())
	assert.True(t, outbound.drainClose())
	assert.False(t, modifyOnly.drainClose())
	assert.False(t, admin.drainClose())
	failed.Store(false)
	assert.False(t, outbound.drainClose(), "/healthcheck/ok undoes it")
}

// The completion of a sequence runs when its drain time is over; one
// asked of a direction already drained by its own sequence waits for the
// same end, and one whose direction has no running sequence runs at once.
func TestDrainCompletion(t *testing.T) {
	d := &drainManager{strategy: "gradual", drainTime: 50 * time.Millisecond}
	defer d.stop()
	first, second := make(chan struct{}), make(chan struct{})
	d.startDrainSequence(drainAll, func() { close(first) })
	d.startDrainSequence(drainAll, func() { close(second) })
	for _, done := range []chan struct{}{first, second} {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the completion did not run after the drain time")
		}
	}
	ran := false
	d.startDrainSequence(drainAll, func() { ran = true })
	assert.True(t, ran, "the drain time is over: at once")
	ran = false
	d.startDrainSequence(drainInboundOnly, func() { ran = true })
	assert.True(t, ran, "covered by All, no sequence of its own: at once")
}

// Mirrors source/server/admin/listeners_handler.cc handlerDrainListeners
// as current Envoy runs it (non_graceful_drain_notifies_connections on)
// and ListenerManagerImpl::stopListeners: every form starts a drain of its
// direction; the listeners it covers (INBOUND ones for inboundonly) stop
// at once, or when the drain time is over with graceful, or never with
// skip_exit.
func TestDrainListenersParameters(t *testing.T) {
	for _, tc := range []struct {
		name                string
		direction           drainDirection
		graceful, skipExit  bool
		atOnce, afterDrain  [2]bool // stopped: the inbound listener, the other one
		drainsOtherListener bool
	}{
		{"drain_listeners", drainAll, false, false, [2]bool{true, true}, [2]bool{true, true}, true},
		{"skip_exit", drainAll, false, true, [2]bool{}, [2]bool{}, true},
		{"graceful", drainAll, true, false, [2]bool{}, [2]bool{true, true}, true},
		{"graceful&skip_exit", drainAll, true, true, [2]bool{}, [2]bool{}, true},
		{"inboundonly", drainInboundOnly, false, false, [2]bool{true, false}, [2]bool{true, false}, false},
		{"inboundonly&graceful", drainInboundOnly, true, false, [2]bool{}, [2]bool{true, false}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The drain timer's work is posted here; the test runs it, as
			// the dispatcher would.
			posted := make(chan func(), 4)
			s := &Server{drain: &drainManager{strategy: "immediate", drainTime: time.Millisecond, post: func(f func()) { posted <- f }}}
			defer s.drain.stop()
			for _, c := range []config.Listener{{Name: "in", Inbound: true}, {Name: "other"}} {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				defer ln.Close()
				s.listeners = append(s.listeners, &listener{cfg: c, sockets: []*socket{{ln: ln}}})
			}
			stopped := func() [2]bool { return [2]bool{s.listeners[0].sockets[0].stopped, s.listeners[1].sockets[0].stopped} }

			s.drainListeners(tc.direction, tc.graceful, tc.skipExit)
			assert.Equal(t, tc.atOnce, stopped(), "at once")
			assert.True(t, s.drain.draining(tc.direction))
			assert.True(t, s.drain.drainClose(drainInboundOnly), "the inbound listener drains")
			assert.Equal(t, tc.drainsOtherListener, s.drain.drainClose(drainAll), "the other listener drains")
			select {
			case f := <-posted:
				f()
			case <-time.After(10 * time.Second):
				t.Fatal("the drain time never ended")
			}
			assert.Equal(t, tc.afterDrain, stopped(), "after the drain time")
		})
	}
}
