package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
	"github.com/envoy-restarter/restarter/restarter/internal/memguard"
	"github.com/envoy-restarter/restarter/restarter/internal/watch"
)

const mib = 1 << 20

// Given a cgroup with less room than the newest epoch's 100 MiB, a hot
// restart is refused, the old epoch serving; with room, it goes ahead.
func TestLoopMemoryGuard(t *testing.T) {
	f := newFakeOS()
	cfg := testConfig()
	cfg.MemoryGuard = config.MemoryGuardAuto
	f.memory = memguard.Reading{Limit: 512 * mib, Usage: 450 * mib, InactiveFile: 10 * mib, Version: 2, Path: "/sys/fs/cgroup/envoy"}
	r, logs := fakeRunner(t, cfg, f)
	r.logGuard()
	handle(t, r, machine.Started{})
	f.takeCalls()

	handle(t, r, hup)
	require.Empty(t, f.takeCalls(), "no epoch started")
	require.Contains(t, logs.String(), "memory guard: limit 512.0 MiB (cgroup v2 /sys/fs/cgroup/envoy)")
	require.Contains(t, logs.String(), "memory guard refused hot restart to epoch 1: not enough memory for a second Envoy: limit 512.0 MiB, used 440.0 MiB, Envoy resident 100.0 MiB")
	st := r.machine.Status()
	require.Equal(t, 1, st.Counters.MemoryGuardRefusals)
	require.Equal(t, "refused", st.Restarts[0].Outcome)

	f.mu.Lock()
	f.memory.Usage = 300 * mib
	f.mu.Unlock()
	handle(t, r, hup)
	require.Equal(t, []string{"start ./start.sh -x pid=101 RESTART_EPOCH=1"}, f.takeCalls(), "the number refused is tried again")
}

// The metrics file is written when the metrics change, and what
// `restarter metrics` prints is the same text.
func TestLoopWritesMetrics(t *testing.T) {
	f := newFakeOS()
	cfg := testConfig()
	cfg.MetricsFile = filepath.Join(t.TempDir(), "restarter.prom")
	r, _ := fakeRunner(t, cfg, f)
	handle(t, r, machine.Started{}, hup)

	b, err := os.ReadFile(cfg.MetricsFile)
	require.NoError(t, err)
	text := string(b)
	require.Contains(t, text, `envoy_restarter_restarts_total{outcome="ok"} 1`+"\n")
	require.Contains(t, text, "envoy_restarter_epoch 1\n")
	require.Contains(t, text, "envoy_restarter_epochs 2\n")
	require.Contains(t, text, "envoy_restarter_restart_duration_seconds_count 1\n")
	require.Equal(t, text, string(r.metricsText()))
}

// A watched file's change is a hot restart request; a file gone is a
// warning, no restart.
func TestLoopWatch(t *testing.T) {
	f := newFakeOS()
	cfg := testConfig()
	cfg.Watch = []string{"/etc/envoy/envoy.yaml"}
	r, logs := startedRunner(t, cfg, f)

	f.watch.events <- watch.Event{Path: "/etc/envoy/envoy.yaml", Gone: true}
	handle(t, r, nextWithin(t, r)...)
	require.Contains(t, logs.String(), "watch: /etc/envoy/envoy.yaml is gone; no hot restart until it is back with new content")
	require.Empty(t, f.takeCalls())

	f.watch.events <- watch.Event{Path: "/etc/envoy/envoy.yaml"}
	handle(t, r, nextWithin(t, r)...)
	require.Contains(t, logs.String(), "watched file changed: /etc/envoy/envoy.yaml")
	require.Equal(t, []string{"start ./start.sh -x pid=101 RESTART_EPOCH=1"}, f.takeCalls())
	require.Equal(t, "watch", r.machine.Status().Restarts[0].Trigger)

	r.tearDown()
	require.True(t, f.watch.closed)
	require.False(t, strings.Contains(logs.String(), "level=ERROR"))
}

// With --stop-drain, a stop first fails Envoy's health check and drains its
// listeners through the admin, then TERMs once no connection is left.
func TestLoopStopDrain(t *testing.T) {
	f := newFakeOS()
	cfg := testConfig()
	cfg.StopDrain, cfg.AdminURL = time.Minute, "http://127.0.0.1:9901"
	r, logs := fakeRunner(t, cfg, f)
	var mu sync.Mutex
	var asked []string
	left := []int{2, 1, 0}
	r.sys.admin = adminClient{
		failHealthcheck: func(_ context.Context, base string) error {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, "fail "+base)
			return nil
		},
		drainListeners: func(_ context.Context, base string) error {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, "drain "+base)
			return nil
		},
		totalConnections: func(context.Context, string) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			n := left[0]
			if len(left) > 1 {
				left = left[1:]
			}
			return n, nil
		},
	}
	handle(t, r, machine.Started{})
	f.takeCalls()

	handle(t, r, term)
	require.Empty(t, f.takeCalls(), "no TERM while draining")
	for !strings.Contains(logs.String(), "no connection left: stopping") {
		handle(t, r, nextWithin(t, r)...)
	}
	require.Contains(t, f.takeCalls(), "kill 100 SIGTERM")
	mu.Lock()
	require.Equal(t, []string{"fail http://127.0.0.1:9901", "drain http://127.0.0.1:9901"}, asked)
	mu.Unlock()
}
