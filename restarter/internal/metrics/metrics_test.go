package metrics

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/internal/promtest"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// realisticSnapshot is a restarter an hour after it started: a hot restart
// to epoch 1 went live in 0.8 s; two SIGHUPs came during it, the first
// queued the next restart and the second joined it (coalesced); that
// restart, to epoch 2, was still initializing when its 60 s ready timeout
// ran out, so it failed (its INITIALIZING flag cleared) and epoch 1 kept
// serving. docs/METRICS.md shows it.
func realisticSnapshot() Snapshot {
	s := Snapshot{
		Restarts:         Restarts{OK: 1, Failed: 1, Coalesced: 1},
		Epoch:            1,
		Epochs:           1,
		InitFlagsCleared: 1,
		StartTime:        time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		LastRestart:      time.Date(2026, 3, 1, 13, 0, 1, 250e6, time.UTC),
	}
	s.Durations.Observe(800 * time.Millisecond)
	s.Durations.Observe(60 * time.Second)
	return s
}

// families is every family Write writes, by name (prefix and all), with its
// type.
var families = map[string]dto.MetricType{
	"envoy_restarter_restarts_total":                 dto.MetricType_COUNTER,
	"envoy_restarter_restart_duration_seconds":       dto.MetricType_HISTOGRAM,
	"envoy_restarter_epoch":                          dto.MetricType_GAUGE,
	"envoy_restarter_epochs":                         dto.MetricType_GAUGE,
	"envoy_restarter_init_flags_cleared_total":       dto.MetricType_COUNTER,
	"envoy_restarter_socket_slot_holds_total":        dto.MetricType_COUNTER,
	"envoy_restarter_log_lines_dropped_total":        dto.MetricType_COUNTER,
	"envoy_restarter_memory_guard_refusals_total":    dto.MetricType_COUNTER,
	"envoy_restarter_start_time_seconds":             dto.MetricType_GAUGE,
	"envoy_restarter_last_restart_timestamp_seconds": dto.MetricType_GAUGE,
}

// written is what Write writes for s.
func written(t *testing.T, s Snapshot) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, Write(&b, s))
	return b.Bytes()
}

// bucketCounts is the histogram's cumulative count at each bound, +Inf
// last, and requires the bounds to be durationBuckets then +Inf.
func bucketCounts(t *testing.T, parsed map[string]*dto.MetricFamily) []uint64 {
	t.Helper()
	mf := parsed["envoy_restarter_restart_duration_seconds"]
	require.NotNil(t, mf)
	require.Len(t, mf.GetMetric(), 1)
	h := mf.GetMetric()[0].GetHistogram()
	var bounds []float64
	var counts []uint64
	for _, b := range h.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
		counts = append(counts, b.GetCumulativeCount())
	}
	require.Equal(t, append(durationBuckets[:], math.Inf(1)), bounds)
	require.Equal(t, h.GetSampleCount(), counts[len(counts)-1], "the +Inf bucket is the count")
	return counts
}

func TestWriteRealisticSnapshot(t *testing.T) {
	// Given a restarter with one restart ok and one failed,
	// when its metrics are written,
	parsed := promtest.Parse(t, written(t, realisticSnapshot()))

	// then every family is there, typed, with help,
	got := map[string]dto.MetricType{}
	for name, mf := range parsed {
		got[name] = mf.GetType()
		require.NotEmpty(t, mf.GetHelp(), name)
	}
	require.Equal(t, families, got)

	// with the snapshot's values, every outcome shown,
	want := map[string]float64{
		`envoy_restarter_restarts_total{outcome="ok"}`:                1,
		`envoy_restarter_restarts_total{outcome="failed"}`:            1,
		`envoy_restarter_restarts_total{outcome="refused"}`:           0,
		`envoy_restarter_restarts_total{outcome="coalesced"}`:         1,
		`envoy_restarter_restart_duration_seconds_sum`:                60.8,
		`envoy_restarter_restart_duration_seconds_count`:              2,
		`envoy_restarter_epoch`:                                       1,
		`envoy_restarter_epochs`:                                      1,
		`envoy_restarter_init_flags_cleared_total`:                    1,
		`envoy_restarter_socket_slot_holds_total`:                     0,
		`envoy_restarter_log_lines_dropped_total`:                     0,
		`envoy_restarter_memory_guard_refusals_total`:                 0,
		`envoy_restarter_start_time_seconds`:                          1772366400,
		`envoy_restarter_last_restart_timestamp_seconds`:              1772370001.25,
		`envoy_restarter_restart_duration_seconds_bucket{le="0.01"}`:  0,
		`envoy_restarter_restart_duration_seconds_bucket{le="0.025"}`: 0,
		`envoy_restarter_restart_duration_seconds_bucket{le="0.05"}`:  0,
		`envoy_restarter_restart_duration_seconds_bucket{le="0.1"}`:   0,
		`envoy_restarter_restart_duration_seconds_bucket{le="0.25"}`:  0,
		`envoy_restarter_restart_duration_seconds_bucket{le="0.5"}`:   0,
		`envoy_restarter_restart_duration_seconds_bucket{le="1"}`:     1,
		`envoy_restarter_restart_duration_seconds_bucket{le="2.5"}`:   1,
		`envoy_restarter_restart_duration_seconds_bucket{le="5"}`:     1,
		`envoy_restarter_restart_duration_seconds_bucket{le="10"}`:    1,
		`envoy_restarter_restart_duration_seconds_bucket{le="25"}`:    1,
		`envoy_restarter_restart_duration_seconds_bucket{le="50"}`:    1,
		`envoy_restarter_restart_duration_seconds_bucket{le="100"}`:   2,
		`envoy_restarter_restart_duration_seconds_bucket{le="300"}`:   2,
		`envoy_restarter_restart_duration_seconds_bucket{le="+Inf"}`:  2,
	}
	require.Equal(t, want, promtest.Samples(t, parsed))

	// and the histogram's buckets are cumulative, +Inf last.
	require.Equal(t, []uint64{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2}, bucketCounts(t, parsed))
}

func TestEveryFieldLandsInItsFamily(t *testing.T) {
	// Given a snapshot whose every field has a value of its own,
	s := Snapshot{
		Restarts: Restarts{OK: 1, Failed: 2, Refused: 3, Coalesced: 4},
		Epoch:    5, Epochs: 6,
		InitFlagsCleared: 7, SlotHolds: 8, LogLinesDropped: 9, MemoryGuardRefusals: 10,
		StartTime:   time.Unix(11, 0),
		LastRestart: time.Unix(12, 500e6),
	}
	// when it is written, then each value is in its own family.
	got := promtest.Samples(t, promtest.Parse(t, written(t, s)))
	for key, value := range map[string]float64{
		`envoy_restarter_restarts_total{outcome="ok"}`:        1,
		`envoy_restarter_restarts_total{outcome="failed"}`:    2,
		`envoy_restarter_restarts_total{outcome="refused"}`:   3,
		`envoy_restarter_restarts_total{outcome="coalesced"}`: 4,
		`envoy_restarter_epoch`:                               5,
		`envoy_restarter_epochs`:                              6,
		`envoy_restarter_init_flags_cleared_total`:            7,
		`envoy_restarter_socket_slot_holds_total`:             8,
		`envoy_restarter_log_lines_dropped_total`:             9,
		`envoy_restarter_memory_guard_refusals_total`:         10,
		`envoy_restarter_start_time_seconds`:                  11,
		`envoy_restarter_last_restart_timestamp_seconds`:      12.5,
	} {
		require.Equal(t, value, got[key], key)
	}
}

func TestZeroSnapshotShowsEveryFamily(t *testing.T) {
	// Given a restarter that has done nothing yet (no hot restart),
	// when its metrics are written,
	parsed := promtest.Parse(t, written(t, Snapshot{}))

	// then every family and every outcome is there, at 0, so that rate()
	// and alerts work from the first scrape, and the last restart's time is
	// 0 (not absent).
	names := make([]string, 0, len(parsed))
	for name := range parsed {
		names = append(names, name)
	}
	require.Len(t, names, len(families), "%v", names)
	got := promtest.Samples(t, parsed)
	require.Len(t, got, 4+len(durationBuckets)+1+2+8, "4 outcomes, the buckets, +Inf, sum, count, 8 single samples")
	for key, value := range got {
		require.Zero(t, value, key)
	}
	require.Contains(t, got, `envoy_restarter_last_restart_timestamp_seconds`)
	require.Contains(t, got, `envoy_restarter_restarts_total{outcome="coalesced"}`)
}

func TestHistogramBuckets(t *testing.T) {
	// The bounds span a hot restart's range, 10 ms to 5 min, ascending.
	require.True(t, sort.Float64sAreSorted(durationBuckets[:]))
	require.Equal(t, 0.01, durationBuckets[0])
	require.Equal(t, 300.0, durationBuckets[len(durationBuckets)-1])

	for _, tc := range []struct {
		name  string
		took  time.Duration
		first int // index of the first bucket (bound) that counts it; len(durationBuckets) is +Inf
		sum   float64
	}{
		{"a bound is in its own bucket (le: less or equal)", 10 * time.Millisecond, 0, 0.01},
		{"just over a bound is in the next", 10*time.Millisecond + time.Microsecond, 1, 0.010001},
		{"zero is in the first", 0, 0, 0},
		{"a negative duration counts as 0", -time.Second, 0, 0},
		{"the last bound", 5 * time.Minute, len(durationBuckets) - 1, 300},
		{"over the last bound only in +Inf", 5*time.Minute + time.Millisecond, len(durationBuckets), 300.001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Snapshot
			s.Durations.Observe(tc.took)
			parsed := promtest.Parse(t, written(t, s))
			for i, n := range bucketCounts(t, parsed) {
				want := uint64(0)
				if i >= tc.first {
					want = 1
				}
				require.Equal(t, want, n, "bucket %d", i)
			}
			require.InDelta(t, tc.sum, promtest.Samples(t, parsed)["envoy_restarter_restart_duration_seconds_sum"], 1e-9)
		})
	}
}

func TestSnapshotIsAValue(t *testing.T) {
	// Given a snapshot taken (copied) after one restart,
	var live Snapshot
	live.Durations.Observe(time.Second)
	taken := live
	// when the live one counts another,
	live.Durations.Observe(time.Second)
	// then the one taken still shows one.
	require.Equal(t, 1.0, promtest.Samples(t, promtest.Parse(t, written(t, taken)))["envoy_restarter_restart_duration_seconds_count"])
}

func TestWriteReportsTheWritersError(t *testing.T) {
	require.ErrorIs(t, Write(failingWriter{}, realisticSnapshot()), errFull)
}

var errFull = fmt.Errorf("no space left")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errFull }
