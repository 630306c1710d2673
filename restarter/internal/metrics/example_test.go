package metrics_test

import (
	"log/slog"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/metrics"
)

// The restarter keeps one Snapshot, counts into it as things happen, and
// writes the file on every change.
func ExampleWriteFile() {
	path := "/var/lib/node_exporter/textfile/envoy_restarter.prom"
	s := metrics.Snapshot{StartTime: time.Now(), Epochs: 1}
	write := func() {
		if err := metrics.WriteFile(path, s); err != nil {
			slog.Error(err.Error()) // the previous file stays in place
		}
	}
	write()

	// A hot restart to epoch 1, started at began, went live.
	began := time.Now()
	s.Restarts.OK++
	s.Durations.Observe(time.Since(began))
	s.LastRestart = time.Now()
	s.Epoch, s.Epochs = 1, 2
	write()
}
