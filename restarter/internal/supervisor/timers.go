package supervisor

import (
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// This file is the loop's timers: the machine's (each armed once, a late
// firing of a stopped or re-armed one dropped) and the memory release.

func (r *runner) setTimer(t machine.Timer, after time.Duration) {
	if stop := r.timers[t]; stop != nil {
		stop()
	}
	r.gen[t]++
	f := timerFiring{timer: t, gen: r.gen[t]}
	r.timers[t] = r.sys.afterFunc(after, func() {
		select {
		case r.fired <- f:
		case <-r.ctx.Done(): // the loop has stopped
		}
	})
}

func (r *runner) stopTimer(t machine.Timer) {
	if stop := r.timers[t]; stop != nil {
		stop()
		delete(r.timers, t)
	}
	r.gen[t]++ // a firing already on its way is dropped
}

func (r *runner) stopTimers() {
	for _, stop := range r.timers {
		stop()
	}
	if r.releaseTimer != nil {
		r.releaseTimer()
	}
}

// Memory a hot restart leaves behind (the fork's argv and environment, log
// lines, the init gate's reads) is garbage once it is done, and the Go
// runtime hands free pages back to the kernel only slowly, so resident
// memory would creep up restart by restart. Handing it back is a full
// collection and a page-fault for every page touched again afterwards
// (a few ms of CPU): never between a signal and the exec it asks for, and
// at most once every releaseEvery however often the restarter is hot
// restarted.
const (
	releaseQuiet = time.Second     // after a hot restart is done, before its memory is handed back
	releaseEvery = 5 * time.Second // at most one release in this long
)

// scheduleRelease arms the memory release when one is due and no hot
// restart is under way (busy): releaseQuiet from now, and no sooner than
// releaseEvery after the last one.
func (r *runner) scheduleRelease(busy bool) {
	if !r.releaseDue || busy || r.releaseTimer != nil {
		return
	}
	delay := max(releaseQuiet, time.Until(r.lastRelease.Add(releaseEvery)))
	r.releaseTimer = r.sys.afterFunc(delay, func() {
		select {
		case r.released <- struct{}{}:
		case <-r.ctx.Done():
		}
	})
}

// releaseMemory hands free memory back to the kernel, unless a hot restart
// began since the release was armed: then it waits for that one to be done
// (settled arms it again). It runs beside the event loop, which a signal
// arriving meanwhile must not wait for.
func (r *runner) releaseMemory() {
	if inProgress, queued := r.machine.RestartPending(); inProgress || queued {
		return
	}
	r.releaseDue = false
	r.lastRelease = time.Now()
	go r.sys.releaseMemory()
}
