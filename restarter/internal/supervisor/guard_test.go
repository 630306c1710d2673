package supervisor

import (
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/control"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
	"github.com/envoy-restarter/restarter/restarter/internal/memguard"
	"github.com/envoy-restarter/restarter/restarter/internal/watch"
)

// guardRunner returns a runner with the memory guard on, whose cgroup
// reads give reading and err, counted in reads.
func guardRunner(t *testing.T, f *fakeOS, reading memguard.Reading, err error, reads *atomic.Int32) (*runner, *syncBuffer) {
	t.Helper()
	cfg := testConfig()
	cfg.MemoryGuard = config.MemoryGuardAuto
	r, logs := fakeRunner(t, cfg, f)
	r.sys.readMemory = func() (memguard.Reading, error) {
		reads.Add(1)
		return reading, err
	}
	return r, logs
}

func TestMemoryGuardWithoutALimitIsInert(t *testing.T) {
	// Given no memory limit on the restarter's cgroup at start,
	f := newFakeOS()
	var reads atomic.Int32
	r, logs := guardRunner(t, f, memguard.Reading{Version: 2}, nil, &reads)
	_, ok := r.setUp()
	require.True(t, ok)
	require.Contains(t, logs.String(), "memory guard inert: no memory limit on the restarter's cgroup")
	handle(t, r, machine.Started{})
	f.takeCalls()
	// when a hot restart comes, then it goes ahead, the cgroup not read again.
	handle(t, r, hup)
	require.Equal(t, []string{"start ./start.sh -x pid=101 RESTART_EPOCH=1"}, f.takeCalls())
	require.Equal(t, int32(1), reads.Load())
}

func TestMemoryGuardFailsOpen(t *testing.T) {
	tests := []struct {
		name     string
		reading  memguard.Reading
		readErr  error
		resident error
		startLog string
		log      string
	}{
		{"the cgroup cannot be read", memguard.Reading{}, errors.New("no cgroup"), nil,
			"memory guard: no cgroup; hot restarts go ahead unguarded while it cannot read",
			"memory guard: no cgroup; the hot restart goes ahead"},
		{"Envoy's resident memory cannot be read", memguard.Reading{Limit: 512 * mib, Usage: 500 * mib}, nil, errors.New("no such process"),
			"memory guard: limit 512.0 MiB",
			"memory guard: resident memory of PID=100: no such process; the hot restart goes ahead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Given a memory guard that cannot tell,
			f := newFakeOS()
			var reads atomic.Int32
			r, logs := guardRunner(t, f, tt.reading, tt.readErr, &reads)
			r.sys.resident = func(int) (uint64, error) { return 0, tt.resident }
			_, ok := r.setUp()
			require.True(t, ok)
			require.Contains(t, logs.String(), tt.startLog)
			handle(t, r, machine.Started{})
			f.takeCalls()
			// when a hot restart comes, then it goes ahead, with a warning.
			handle(t, r, hup)
			require.Equal(t, []string{"start ./start.sh -x pid=101 RESTART_EPOCH=1"}, f.takeCalls())
			require.Contains(t, logs.String(), tt.log)
			require.Equal(t, 0, r.machine.Status().Counters.MemoryGuardRefusals)
		})
	}
}

func TestMemoryGuardLimitRemovedLetsRestartsGo(t *testing.T) {
	// Given a limit at start that is gone by the hot restart,
	f := newFakeOS()
	f.memory = memguard.Reading{Limit: 512 * mib, Usage: 500 * mib}
	cfg := testConfig()
	cfg.MemoryGuard = config.MemoryGuardAuto
	r, logs := startedRunner(t, cfg, f)
	f.mu.Lock()
	f.memory = memguard.Reading{Usage: 500 * mib}
	f.mu.Unlock()
	// when it comes, it goes ahead, quietly.
	handle(t, r, hup)
	require.Equal(t, []string{"start ./start.sh -x pid=101 RESTART_EPOCH=1"}, f.takeCalls())
	require.NotContains(t, logs.String(), "level=WARN")
}

func TestMetricsFileWriteFailureIsRetried(t *testing.T) {
	// Given a metrics file whose first write fails,
	f := newFakeOS()
	cfg := testConfig()
	cfg.MetricsFile = filepath.Join(t.TempDir(), "restarter.prom")
	r, logs := fakeRunner(t, cfg, f)
	var writes [][]byte
	r.sys.writeFile = func(path string, data []byte) error {
		require.Equal(t, cfg.MetricsFile, path)
		writes = append(writes, data)
		if len(writes) == 1 {
			return errors.New("write " + path + ": read-only file system")
		}
		return nil
	}
	// when the loop settles, the failure is a warning,
	handle(t, r, machine.Started{})
	require.Contains(t, logs.String(), "metrics: write "+cfg.MetricsFile+": read-only file system")
	// the same metrics are written again next time, and then not again
	// while they do not change.
	handle(t, r)
	handle(t, r)
	require.Len(t, writes, 2)
	require.Equal(t, writes[0], writes[1])
	require.Equal(t, string(r.metricsText()), string(writes[1]))
}

func TestControlMetricsAnswersTheMetrics(t *testing.T) {
	// Given a restarter at epoch 1,
	f := newFakeOS()
	r, _ := fakeRunner(t, testConfig(), f)
	handle(t, r, machine.Started{}, hup)
	// when asked for its metrics, it answers at once, with no event for the
	// machine.
	reply := make(chan control.Reply, 1)
	require.Empty(t, r.controlCall(control.Call{Command: "metrics", Reply: reply}))
	got := <-reply
	require.True(t, got.OK)
	require.Contains(t, got.Metrics, "envoy_restarter_epoch 1\n")
	require.Equal(t, string(r.metricsText()), got.Metrics)
}

func TestWatchErrorIsAWarningNotARestart(t *testing.T) {
	// Given a watched file,
	f := newFakeOS()
	cfg := testConfig()
	cfg.Watch = []string{"/etc/envoy/envoy.yaml"}
	r, logs := startedRunner(t, cfg, f)
	// when it cannot be read, then that is a warning, and no restart.
	f.watch.events <- watch.Event{Path: "/etc/envoy/envoy.yaml", Err: errors.New("permission denied")}
	handle(t, r, nextWithin(t, r)...)
	require.Contains(t, logs.String(), "watch: permission denied")
	require.Empty(t, f.takeCalls())
}
