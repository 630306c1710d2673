package osproc

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// This file is the OS side of the init gate (--init-gate auto): it finds
// Envoy's hot restart shared memory region, maps it, and watches the
// INITIALIZING bit of its flags_ word, the bit a starting Envoy sets and
// checks (a second epoch that finds it set exits 1 with "previous envoy
// process is still initializing").
//
// Finding the region needs no configuration: Envoy maps
// /dev/shm/envoy_shared_memory_<base id*10>, so it shows in the epoch's
// /proc/PID/maps (or in a child's, for a start script that does not exec).
// All epochs of one restarter share the region, so it is found once.
//
// The region is only ever taken from a live epoch's maps, never by name:
// a region of the same name may be left in /dev/shm by an earlier run or
// by an epoch killed while starting, with INITIALIZING still set, and
// Envoy's epoch 0 unlinks it and creates its own. The maps line names the
// file the epoch uses by device and inode; the gate opens the path and
// maps it only if it is that very file (a path replaced in between is
// looked up again in the maps later).
//
// Waking up: Envoy sets and clears the bit with plain atomic operations, no
// futex wake, and a write through a mapping raises no inotify event, so
// there is nothing to block on: the watcher polls the mapped word (an
// atomic load). Every poll is a timer wake-up of the restarter (and of the
// Go runtime's sysmon thread), so a watcher polls fast only while it must:
// every initPoll while a hot restart waits for the epoch (the event loop
// says so with setQueued, which wakes the watchers at once), so that the
// queued restart forks within about a millisecond of the flag clearing.
// With nobody waiting it looks every initPollStarting until the epoch is
// seen holding the flag (a window that can be a few milliseconds long, and
// a missed one costs mappedGrace), then backs off up to initPollIdle, which
// only delays the moment the restart is reported done.

// Polling periods of the gate.
const (
	initPoll         = time.Millisecond      // the flag word, while a restart waits for the epoch
	initPollStarting = 4 * time.Millisecond  // with nobody waiting, until the flag is seen set
	initPollIdle     = 25 * time.Millisecond // at most, with nobody waiting, once it was seen set
	mapsPoll         = 10 * time.Millisecond // /proc/PID/maps, until the epoch is seen holding the flag
	// mappedGrace: mapped and still clear this long means the epoch set and
	// cleared the flag between two looks (attached and done). It only
	// decides when the watcher never saw the flag set, and must outlast an
	// epoch preempted between mapping the region and setting the flag: at
	// 2 ms a loaded machine made the gate call an epoch done before it had
	// even set the flag.
	mappedGrace     = 250 * time.Millisecond
	discoverPollMax = 100 * time.Millisecond
)

// InitGate holds the region once found; watchers of every epoch share it.
type InitGate struct {
	discoverFor time.Duration // how long an epoch is searched for the region before it counts as not Envoy

	// queued: a hot restart waits for the initializing epoch (setQueued).
	queued atomic.Bool

	mu     sync.Mutex
	region *mappedRegion
	// hurry is closed, and replaced, when queued becomes true.
	hurry chan struct{}
}

// NewInitGate returns an init gate that takes an epoch not found mapping
// Envoy's region within discoverFor for one that is not Envoy.
func NewInitGate(discoverFor time.Duration) *InitGate { return &InitGate{discoverFor: discoverFor} }

// setQueued tells the watchers whether a hot restart waits (is queued) for
// the initializing epoch: they poll its flag every initPoll while one does.
// Only the event loop calls it.
func (g *InitGate) SetQueued(queued bool) {
	if g.queued.Swap(queued) == queued || !queued {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hurry != nil {
		close(g.hurry)
		g.hurry = nil
	}
}

// hurried returns a channel closed the next time a hot restart is queued.
func (g *InitGate) hurried() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hurry == nil {
		g.hurry = make(chan struct{})
	}
	return g.hurry
}

// known reports whether the region was found: the children are Envoy.
func (g *InitGate) Known() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.region != nil
}

func (g *InitGate) current() *mappedRegion {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.region
}

// find returns the region ref names, an epoch's mapping: the one known if
// it is that region, else ref mapped (and known from now on: the epochs
// moved to it).
func (g *InitGate) find(ref regionRef) (*mappedRegion, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.region != nil && g.region.ref == ref {
		return g.region, nil
	}
	r, err := mapRegion(ref)
	if err != nil {
		return nil, err
	}
	// A region replaced here stays mapped: a watcher may still read it, and
	// it is one page.
	g.region = r
	return r, nil
}

// watchInit watches epoch (process pid) until it has cleared Envoy's
// INITIALIZING flag, reporting InitStarted when it is seen holding it
// (unless gated: the epoch was forked known to be Envoy, and is held as
// initializing from its fork) and InitDone when it is done (or, with a
// warning, when the region's layout is unknown). An epoch not found mapping
// the region within discoverFor while the region is unknown is not Envoy:
// InitDone is reported then. It returns when ctx is done (the epoch was
// reaped) or the epoch is gone.
func (g *InitGate) Watch(ctx context.Context, epoch, pid int, gated bool, report func(machine.Event)) {
	region, err := g.discover(ctx, pid)
	if err != nil {
		report(machine.InitDone{Epoch: epoch, Warning: err.Error()})
		return
	}
	if region == nil {
		// Not Envoy (or gone): the gate is done with it, and a SIGUSR1 held
		// until the gate decided can go.
		report(machine.InitDone{Epoch: epoch})
		return
	}
	// backoff is the next wait while no restart waits: initPollStarting
	// until the flag is seen set (an epoch takes longer than that to exec
	// and attach), then doubling from 2*initPollStarting up to initPollIdle.
	w := &watch{g: g, epoch: epoch, pid: pid, gated: gated, report: report, region: region,
		backoff: initPollStarting, lastMaps: time.Now()} // (a new epoch has not mapped it in its first moments)
	timer := time.NewTimer(initPoll)
	defer timer.Stop()
	for !w.look() && w.wait(ctx, timer) {
	}
}

// watch is one epoch's INITIALIZING watch (InitGate.Watch).
type watch struct {
	g          *InitGate
	epoch, pid int
	gated      bool
	report     func(machine.Event)
	region     *mappedRegion
	seenSet    bool
	backoff    time.Duration
	// mappedAt is when the epoch was first seen mapping the region with the
	// flag clear; lastMaps when its maps were last read.
	mappedAt, lastMaps time.Time
}

// look reads the flag (and, until it was seen set, the epoch's maps), and
// reports what changed; done says the watch is over.
func (w *watch) look() (done bool) {
	set := w.region.Initializing()
	switch {
	case set && !w.seenSet:
		w.seenSet, w.backoff = true, 2*initPollStarting
		if !w.gated {
			w.report(machine.InitStarted{Epoch: w.epoch})
		}
	case !set && w.seenSet:
		w.report(machine.InitDone{Epoch: w.epoch, Envoy: true})
		return true
	case !set && !w.mappedAt.IsZero() && time.Since(w.mappedAt) >= mappedGrace:
		// Mapped, and the flag stayed clear: the epoch set and cleared it
		// between two looks (Envoy sets it right after mapping).
		w.report(machine.InitDone{Epoch: w.epoch, Envoy: true})
		return true
	}
	// Once the flag was seen set, its clearing is all that is left to see;
	// the epoch's death stops the watch (ctx).
	if w.seenSet || time.Since(w.lastMaps) < mapsPoll {
		return false
	}
	return w.lookAtMaps(set)
}

// lookAtMaps reads the epoch's maps: gone, the watch is over; mapping
// another region than the one known (its epoch 0 made a new one), that one
// is the epochs' from now on; mapping the known one with the flag clear,
// the grace starts.
func (w *watch) lookAtMaps(set bool) (done bool) {
	w.lastMaps = time.Now()
	ref, alive := regionInMaps(w.pid)
	switch {
	case !alive:
		return true
	case ref.path != "" && ref != w.region.ref:
		if r, err := w.g.find(ref); err == nil {
			w.region, w.mappedAt = r, time.Time{}
		}
	case !set && w.mappedAt.IsZero() && ref == w.region.ref:
		w.mappedAt = w.lastMaps
	}
	return false
}

// wait waits for the next look: initPoll while a hot restart waits for the
// flag, else the backoff; a restart queued meanwhile wakes it at once. It
// returns false once ctx is done.
func (w *watch) wait(ctx context.Context, timer *time.Timer) bool {
	hurry := w.g.hurried() // before queued is read: a restart queued after it closes this one
	wait := initPoll
	if !w.g.queued.Load() {
		limit := initPollStarting
		if w.seenSet {
			limit = initPollIdle
		}
		wait, w.backoff = w.backoff, min(2*w.backoff, limit)
	}
	timer.Reset(wait)
	select {
	case <-ctx.Done():
		return false
	case <-hurry:
		timer.Stop()
	case <-timer.C:
	}
	return true
}

// discover returns the region: already known (taken from an epoch's maps
// earlier), or found in the maps of pid (or its children), polling with
// back-off for up to discoverFor. It returns nil, nil for a child that is
// not Envoy. A region is never looked up by name: a file of that name may
// be a stale one, which epoch 0 is about to replace.
func (g *InitGate) discover(ctx context.Context, pid int) (*mappedRegion, error) {
	if r := g.current(); r != nil {
		return r, nil
	}
	start := time.Now()
	wait := initPoll
	for {
		ref, alive := regionInMaps(pid)
		if ref.path != "" {
			r, err := g.find(ref)
			if !errors.Is(err, errReplaced) && !errors.Is(err, errUnwritten) {
				return r, err
			}
			// Replaced since the maps were read, or mapped by an epoch 0
			// that has not written its header yet: look again.
		}
		if !alive || time.Since(start) > g.discoverFor {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(wait):
		}
		wait = min(2*wait, discoverPollMax)
	}
}

// InitializingNow reports whether pid (or a child of it) has mapped
// Envoy's region and holds its INITIALIZING flag now. The event loop asks
// it, before a hot restart request, about an epoch whose watcher has not
// told yet: the watcher may have found the region (it is known then) and
// not yet reported the flag it saw set.
func (g *InitGate) InitializingNow(pid int) bool {
	ref, _ := regionInMaps(pid)
	if ref.path == "" {
		return false
	}
	region, err := g.find(ref)
	if err != nil {
		return false // replaced (the watcher looks again), or an unknown layout (the watcher reports it)
	}
	return region.Initializing()
}

// clearInit clears a flag left set by a dead epoch, and reports whether it
// was set. Only the event loop calls it, when no epoch is starting. Only the
// known region is healed, the one the epochs were seen mapping: an epoch
// can only have been initializing in it, and a file of the same name that
// no epoch mapped (left by an earlier run) is none of the restarter's.
func (g *InitGate) ClearInit() bool {
	region := g.current()
	if region == nil || !region.Initializing() {
		return false
	}
	region.ClearInitializing()
	return true
}
