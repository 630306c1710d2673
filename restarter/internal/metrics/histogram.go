package metrics

import (
	"sort"
	"time"
)

// durationBuckets are the upper bounds, in seconds, of
// restart_duration_seconds' buckets (+Inf aside). A hot restart takes from
// about 10 ms (a small config, no readiness probe) through seconds (a real
// Envoy loading its config, a readiness probe) to minutes (a pre-restart
// check and a readiness probe each up to their 60 s default timeouts, or
// longer ones); the 1, 2.5, 5 steps keep each bucket within 2.5 times the
// one below, and 300 s catches both default timeouts in a row with room to
// spare. Fourteen buckets, as few as that range allows at that resolution.
var durationBuckets = [...]float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 300}

// Histogram counts hot restart durations into restart_duration_seconds'
// buckets. Its zero value is empty and ready to use; it is a plain value
// (copying it copies its counts), not safe for concurrent use.
type Histogram struct {
	counts [len(durationBuckets) + 1]uint64 // per bucket, not cumulative; the last is +Inf's own
	sum    float64                          // seconds
}

// Observe counts one hot restart that took d. A negative d (a clock stepped
// back) counts as 0, so the sum never decreases.
func (h *Histogram) Observe(d time.Duration) {
	s := max(d.Seconds(), 0)
	h.counts[sort.SearchFloat64s(durationBuckets[:], s)]++ // the first bound >= s
	h.sum += s
}
