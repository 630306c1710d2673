package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
	"github.com/envoy-restarter/restarter/restarter/internal/memguard"
	"github.com/envoy-restarter/restarter/restarter/internal/metrics"
	"github.com/envoy-restarter/restarter/restarter/internal/watch"
	"github.com/envoy-restarter/restarter/restarter/status"
)

// This file is what the loop adds around the machine's hot restarts: the
// memory guard asked before each one, the metrics it keeps and writes, and
// the config watch that asks for one.

// guard returns why the memory guard refuses the next hot restart: the
// restarter's cgroup has less room left than the newest epoch's resident
// memory, which a second Envoy will need about as much of. "" lets it go
// ahead: no limit, the guard off, or nothing to go by (a read error is
// logged and fails open).
func (r *runner) guard() string {
	if r.cfg.MemoryGuard != config.MemoryGuardAuto || r.guardInert {
		return ""
	}
	_, pid, ok := r.machine.Newest()
	if !ok {
		return ""
	}
	reading, err := r.sys.readMemory()
	if err != nil {
		r.log.Warn(fmt.Sprintf("memory guard: %v; the hot restart goes ahead", err))
		return ""
	}
	if reading.Limit == 0 {
		return ""
	}
	rss, err := r.sys.resident(pid)
	if err != nil {
		r.log.Warn(fmt.Sprintf("memory guard: resident memory of PID=%d: %v; the hot restart goes ahead", pid, err))
		return ""
	}
	if ok, reason := memguard.Check(reading, rss); !ok {
		return reason
	}
	return ""
}

// logGuard says at start-up what the memory guard will go by.
func (r *runner) logGuard() {
	if r.cfg.MemoryGuard != config.MemoryGuardAuto {
		return
	}
	reading, err := r.sys.readMemory()
	switch {
	case err != nil:
		r.log.Warn(fmt.Sprintf("memory guard: %v; hot restarts go ahead unguarded while it cannot read", err))
	case reading.Limit == 0:
		// Nothing to read before each hot restart, between its signal and
		// its fork: a limit set later is seen at the next start.
		r.guardInert = true
		r.log.Info("memory guard inert: no memory limit on the restarter's cgroup")
	default:
		r.log.Info(fmt.Sprintf("memory guard: limit %.1f MiB (cgroup v%d %s)", float64(reading.Limit)/(1<<20), reading.Version, reading.Path))
	}
}

// recorded takes a finished restart record into the metrics.
func (r *runner) recorded(rec status.Restart) {
	if rec.Outcome == status.OutcomeCoalesced {
		return
	}
	r.durations.Observe(time.Duration(rec.DurationSeconds * float64(time.Second)))
	r.lastRestart = rec.FinishedAt
}

// metricsSnapshot is what the metrics show now.
func (r *runner) metricsSnapshot() metrics.Snapshot {
	st := r.machine.Status()
	o, c := st.Counters.Outcomes, st.Counters
	s := metrics.Snapshot{
		Restarts: metrics.Restarts{OK: uint64(o[status.OutcomeOK]), Failed: uint64(o[status.OutcomeFailed]),
			Refused: uint64(o[status.OutcomeRefused]), Coalesced: uint64(o[status.OutcomeCoalesced])},
		Durations:           r.durations,
		Epochs:              len(st.Epochs),
		InitFlagsCleared:    uint64(c.InitFlagsCleared),
		SlotHolds:           uint64(c.SlotHolds),
		MemoryGuardRefusals: uint64(c.MemoryGuardRefusals),
		LogLinesDropped:     r.relayDropped(),
		StartTime:           r.started,
		LastRestart:         r.lastRestart,
	}
	if epoch, _, ok := r.machine.Newest(); ok {
		s.Epoch = epoch
	}
	return s
}

// metricsText is the metrics in the text exposition format.
func (r *runner) metricsText() []byte {
	var b bytes.Buffer
	metrics.Write(&b, r.metricsSnapshot()) // a bytes.Buffer does not fail
	return b.Bytes()
}

// writeMetrics replaces --metrics-file when the metrics changed.
func (r *runner) writeMetrics() {
	if r.cfg.MetricsFile == "" {
		return
	}
	text := r.metricsText()
	if bytes.Equal(text, r.lastMetrics) {
		return
	}
	if err := r.sys.writeFile(r.cfg.MetricsFile, text); err != nil {
		r.log.Warn(fmt.Sprintf("metrics: %v", err))
		return
	}
	r.lastMetrics = text
}

// watched turns what the config watch saw into events: a changed file is
// a hot restart request; a file gone or unreadable is a warning.
func (r *runner) watched(ev watch.Event) []machine.Event {
	switch {
	case ev.Err != nil:
		r.log.Warn(fmt.Sprintf("watch: %v", ev.Err), "path", ev.Path)
	case ev.Gone:
		r.log.Warn(fmt.Sprintf("watch: %s is gone; no hot restart until it is back with new content", ev.Path), "path", ev.Path)
	default:
		return []machine.Event{machine.WatchChanged{Path: ev.Path}}
	}
	return nil
}

// drainPoll is how often the drain asks Envoy how many connections are left.
const drainPoll = 100 * time.Millisecond

// startDrain fails Envoy's health check and drains its listeners through
// its admin, then reports the connections left (DrainProgress) each time
// the count changes, until none is left or the drain is stopped. An admin
// that does not answer is logged; the --stop-drain timer ends the drain.
func (r *runner) startDrain() {
	ctx := r.tasks.start(r.ctx, task{drainTask, 0})
	base, admin := r.cfg.AdminURL, r.sys.admin
	go func() {
		for _, step := range []func(context.Context, string) error{admin.failHealthcheck, admin.drainListeners} {
			if err := step(ctx, base); err != nil && ctx.Err() == nil {
				r.log.Warn(fmt.Sprintf("drain: %v", err))
			}
		}
		last := -1
		for ctx.Err() == nil {
			n, err := admin.totalConnections(ctx, base)
			switch {
			case err != nil && ctx.Err() == nil && last != -2:
				r.log.Warn(fmt.Sprintf("drain: %v; waiting for --stop-drain", err))
				last = -2
			case err == nil && n != last:
				last = n
				r.report(ctx, machine.DrainProgress{Connections: n})
				if n == 0 {
					return
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(drainPoll):
			}
		}
	}()
}
