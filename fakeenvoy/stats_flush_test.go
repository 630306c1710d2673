package main

import (
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// configWith writes the sandbox's bootstrap (see config) with extra
// top-level YAML.
func (sb *sandbox) configWith(name, extra string) string {
	sb.t.Helper()
	p := sb.config(name, 0)
	b, err := os.ReadFile(p)
	require.NoError(sb.t, err)
	require.NoError(sb.t, os.WriteFile(p, append(b, extra...), 0o644))
	return p
}

// Mirrors source/server/server.cc InstanceImpl::initialize (the stat flush
// timer armed with the bootstrap's stats_flush_interval) and flushStats /
// updateServerStats: each flush asks a hot restart parent not yet
// terminated for its stats (source/server/hot_restarting_child.cc), and a
// parent gone is a refused send, ten retries, then an abort.
func TestBootstrapStatsFlushIntervalPacesTheParentCheck(t *testing.T) {
	sb := newSandbox(t)
	// Given epoch 1 flushing its stats every 50 ms, as its bootstrap says,
	cfg := sb.configWith("c.yaml", "stats_flush_interval: 0.05s\n")
	e0 := sb.startRunning(0, "-c", cfg)
	e1 := sb.startRunning(1, "-c", cfg, "--fake-parent-shutdown-time", "1h", "--fake-hot-restart-retry-delay", "5ms")
	// when its parent dies before it was terminated,
	e0.Signal(syscall.SIGKILL)
	e0.Wait(wait)
	// then its next flush finds the parent gone and it aborts.
	assertAbortedAfterRetries(t, e1)
}

// Mirrors source/server/server.cc (no stat flush timer with
// stats_flush_on_admin) and source/server/admin/stats_handler.cc (each
// /stats request flushes the stats first, so it is then that a child asks
// its parent for stats): a child whose parent died notices at the next
// /stats request, not before.
func TestStatsFlushOnAdminChecksTheParentAtStatsRequests(t *testing.T) {
	sb := newSandbox(t)
	// Given epoch 1 with stats_flush_on_admin (and an interval that would
	// flush every 5 ms, were there a timer),
	cfg := sb.configWith("c.yaml", "stats_flush_on_admin: true\n")
	e0 := sb.startRunning(0, "-c", cfg)
	e1 := sb.startRunning(1, "-c", cfg, "--fake-parent-shutdown-time", "1h", "--fake-hot-restart-retry-delay", "5ms",
		"--fake-stats-flush-interval", "5ms", "--fake-state-path", sb.Path("s1.json"))
	st1 := readState(t, sb.Path("s1.json"), 1)
	// when its parent dies,
	e0.Signal(syscall.SIGKILL)
	e0.Wait(wait)
	// then it serves on, sixty would-be intervals later,
	time.Sleep(300 * time.Millisecond)
	require.True(t, e1.Alive(), "no stats flush without a /stats request")
	code, _ := get(t, "http://"+st1.Listeners["web"]+"/")
	assert.Equal(t, 200, code)
	// until /stats flushes the stats and finds the parent gone.
	go func() {
		// Never answered: the process aborts while flushing.
		client := &http.Client{Timeout: wait}
		if resp, err := client.Get("http://" + st1.AdminAddress + "/stats"); err == nil {
			resp.Body.Close()
		}
	}()
	assertAbortedAfterRetries(t, e1)
}

// Mirrors source/server/configuration_impl.cc StatsConfigImpl, built by
// MainImpl::initialize after the admin is up: both stats fields set fail
// a new epoch after its parent lost its admin, and fail --mode validate.
func TestStatsFlushBothSetFailsAfterShutdownAdmin(t *testing.T) {
	sb := newSandbox(t)
	e0 := sb.startRunning(0, "-c", sb.config("good.yaml", 0), "--fake-parent-shutdown-time", "1h")
	bad := sb.configWith("bad.yaml", "stats_flush_on_admin: true\nstats_flush_interval: 1s\n")
	e1 := sb.start(1, "-c", bad)
	assert.Equal(t, proctest.Exit{Code: 1}, e1.Wait(wait))
	assert.Contains(t, e1.Output(), "error initializing configuration '"+bad+"': Only one of stats_flush_interval or stats_flush_on_admin should be set!")
	assert.Contains(t, e1.Output(), "admin address: ", "after its admin was bound")
	e0.WaitLine("shutting down admin due to child startup", 1, wait)
	assert.True(t, e0.Alive())

	validate := sb.startRaw("--mode", "validate", "-c", bad)
	assert.Equal(t, proctest.Exit{Code: 1}, validate.Wait(wait))
	assert.Contains(t, validate.Output(), "Only one of stats_flush_interval or stats_flush_on_admin should be set!")
}
