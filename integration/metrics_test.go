package integration

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
	"github.com/envoy-restarter/restarter/internal/promtest"
)

// The metrics (docs/METRICS.md) end to end: `restarter metrics` and
// --metrics-file, read with the Prometheus project's own parser, count what
// the restarter did.

func TestMetricsCountHotRestarts(t *testing.T) {
	t.Parallel()
	// Given a restarter writing --metrics-file, behind a validating check,
	sb := newSafeSandbox(t, "")
	file := sb.Path("envoy_restarter.prom")
	begin := time.Now()
	sb.startSafe("--metrics-file", file)
	e0, _ := sb.waitReady(0)
	proctest.WaitFor(t, wait, file+" written", func() bool { _, err := os.Stat(file); return err == nil })
	before := metricSamples(t, readMetricsFile(t, file))
	require.Zero(t, before[`envoy_restarter_restart_duration_seconds_count`])
	require.Zero(t, before[`envoy_restarter_last_restart_timestamp_seconds`], "0 before the first hot restart")

	// when one hot restart goes live (once its old epoch is gone, so that
	// one epoch is left) and the check refuses the next,
	code, out := sb.reload()
	require.Equal(t, 0, code, out)
	require.Equal(t, "exited with code=0", sb.waitReaped(e0))
	sb.breakConfig()
	code, out = sb.reload()
	require.Equal(t, 1, code, out)

	// then the file, once rewritten, and `restarter metrics` count both.
	var fromFile map[string]float64
	proctest.WaitFor(t, wait, file+" to count the refused hot restart", func() bool {
		fromFile = metricSamples(t, readMetricsFile(t, file))
		return fromFile[`envoy_restarter_restarts_total{outcome="refused"}`] == 1
	})
	code, out = runRestarter(t, "metrics", "--control-socket", sb.sock, "--timeout", wait.String())
	require.Equal(t, 0, code, out)
	fromCommand := metricSamples(t, []byte(out))
	require.Equal(t, fromFile, fromCommand, "the file and `restarter metrics` show the same")
	info, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), info.Mode())
	leftovers, err := filepath.Glob(sb.Path(".envoy_restarter.prom.*"))
	require.NoError(t, err)
	require.Empty(t, leftovers, "temporary files left beside the metrics file")

	for name, want := range map[string]float64{
		`envoy_restarter_restarts_total{outcome="ok"}`:        1,
		`envoy_restarter_restarts_total{outcome="refused"}`:   1,
		`envoy_restarter_restarts_total{outcome="failed"}`:    0,
		`envoy_restarter_restarts_total{outcome="coalesced"}`: 0,
		`envoy_restarter_restart_duration_seconds_count`:      2,
		`envoy_restarter_epoch`:                               1,
		`envoy_restarter_epochs`:                              1,
	} {
		require.Contains(t, fromCommand, name)
		require.Equal(t, want, fromCommand[name], name)
	}
	start := fromCommand[`envoy_restarter_start_time_seconds`]
	last := fromCommand[`envoy_restarter_last_restart_timestamp_seconds`]
	require.Positive(t, fromCommand[`envoy_restarter_restart_duration_seconds_sum`])
	require.InDelta(t, float64(begin.UnixNano())/1e9, start, 10, "start time")
	require.Greater(t, last, start, "the last hot restart finished after the start")
	require.LessOrEqual(t, last, float64(time.Now().UnixNano())/1e9)
	requireStatusJSON(t, sb)
}

// readMetricsFile reads --metrics-file; the restarter replaces it whole.
func readMetricsFile(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	return b
}

// metricSamples is every sample of the text exposition format, keyed as the
// text shows it (promtest.Samples).
func metricSamples(t *testing.T, text []byte) map[string]float64 {
	t.Helper()
	return promtest.Samples(t, promtest.Parse(t, text))
}
