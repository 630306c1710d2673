// Package metrics writes the restarter's Prometheus metrics in the text
// exposition format (version 0.0.4), for node_exporter's textfile collector
// (--metrics-file) and `restarter metrics`. It writes the format by hand:
// Prometheus' client library would bring net/http into the restarter. It
// does no I/O but to the writer or file it is given, and keeps no state:
// the caller counts, and hands it a Snapshot. docs/METRICS.md is the
// operator's page.
package metrics

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/envoy-restarter/restarter/internal/atomicfile"
)

// prefix starts every family's name.
const prefix = "envoy_restarter_"

// Snapshot is what the restarter counted since it started, and its state
// now: everything the metrics show.
type Snapshot struct {
	Restarts Restarts
	// Durations are the hot restarts' durations: one for each restart
	// counted in Restarts.OK, Failed or Refused.
	Durations Histogram
	// Epoch is the newest running epoch's number; Epochs how many run.
	Epoch, Epochs int
	// InitFlagsCleared counts INITIALIZING flags cleared after an epoch died
	// initializing; SlotHolds, hot restarts held while epoch N-3 exited;
	// LogLinesDropped, the restarter's log lines lost to a slow or dead log
	// reader; MemoryGuardRefusals, hot restarts the memory guard refused.
	InitFlagsCleared, SlotHolds, LogLinesDropped, MemoryGuardRefusals uint64
	// StartTime is when the restarter started; LastRestart when the last hot
	// restart finished, whatever its outcome (zero before the first).
	StartTime, LastRestart time.Time
}

// Restarts counts hot restarts (epoch 1 on) by outcome.
type Restarts struct {
	// OK: the new epoch became live. Failed: it exited, timed out or could
	// not be started. Refused: refused before anything started (--check or
	// the memory guard). Coalesced: a SIGHUP or reload that joined a hot
	// restart already queued, starting none of its own.
	OK, Failed, Refused, Coalesced uint64
}

// Write writes s to w in the text exposition format, in one Write call.
// Every family is always there, zeros included.
func Write(w io.Writer, s Snapshot) error {
	_, err := w.Write(exposition(s))
	return err
}

// WriteFile replaces the file at path with s in the text exposition format,
// mode 0644, through a temporary file in the same directory and a rename: a
// reader (node_exporter's textfile collector) sees the old metrics or the
// new, never a part. On error the file is untouched and no temporary file
// is left.
func WriteFile(path string, s Snapshot) error {
	if err := atomicfile.Write(path, exposition(s)); err != nil {
		return fmt.Errorf("write metrics file %s: %w", path, err)
	}
	return nil
}

// exposition is s in the text exposition format, families in the order
// docs/METRICS.md lists them.
func exposition(s Snapshot) []byte {
	var b bytes.Buffer
	header(&b, "restarts_total", "counter", "Hot restarts by outcome: ok (the new epoch became live), failed (it exited, timed out or could not be started), refused (refused before anything started: --check or the memory guard), coalesced (a SIGHUP or reload that joined a hot restart already queued).")
	for _, r := range []struct {
		outcome string
		n       uint64
	}{{"ok", s.Restarts.OK}, {"failed", s.Restarts.Failed}, {"refused", s.Restarts.Refused}, {"coalesced", s.Restarts.Coalesced}} {
		fmt.Fprintf(&b, "%srestarts_total{outcome=\"%s\"} %d\n", prefix, r.outcome, r.n)
	}
	histogram(&b, "restart_duration_seconds", "Duration of hot restarts, from the start (the pre-restart check included) to the outcome: ok, failed or refused.", s.Durations)
	for _, f := range []struct{ name, typ, help, value string }{
		{"epoch", "gauge", "Number of the newest running epoch (Envoy's --restart-epoch).", strconv.Itoa(s.Epoch)},
		{"epochs", "gauge", "Epochs running: the live one and those starting or draining.", strconv.Itoa(s.Epochs)},
		{"init_flags_cleared_total", "counter", "INITIALIZING flags cleared in Envoy's shared memory after an epoch died initializing (envoyproxy/envoy#33446).", formatCount(s.InitFlagsCleared)},
		{"socket_slot_holds_total", "counter", "Hot restarts held because epoch N-3, whose domain socket ids epoch N binds, was still exiting.", formatCount(s.SlotHolds)},
		{"log_lines_dropped_total", "counter", "Lines of the epochs' output the log relay dropped because the log reader was slow or gone.", formatCount(s.LogLinesDropped)},
		{"memory_guard_refusals_total", "counter", "Hot restarts the memory guard refused.", formatCount(s.MemoryGuardRefusals)},
		{"start_time_seconds", "gauge", "Unix time the restarter started, in seconds.", unixSeconds(s.StartTime)},
		{"last_restart_timestamp_seconds", "gauge", "Unix time the last hot restart finished (ok, failed or refused), in seconds; 0 before the first.", unixSeconds(s.LastRestart)},
	} {
		header(&b, f.name, f.typ, f.help)
		fmt.Fprintf(&b, "%s%s %s\n", prefix, f.name, f.value)
	}
	return b.Bytes()
}

// header writes a family's HELP and TYPE lines. help must not hold a
// backslash or a newline (the format would need them escaped).
func header(b *bytes.Buffer, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s%s %s\n# TYPE %s%s %s\n", prefix, name, help, prefix, name, typ)
}

// histogram writes h as a histogram family: cumulative buckets, +Inf last,
// then the sum and the count.
func histogram(b *bytes.Buffer, name, help string, h Histogram) {
	header(b, name, "histogram", help)
	var cumulative uint64
	for i, n := range h.counts {
		cumulative += n
		le := "+Inf"
		if i < len(durationBuckets) {
			le = formatFloat(durationBuckets[i])
		}
		fmt.Fprintf(b, "%s%s_bucket{le=\"%s\"} %d\n", prefix, name, le, cumulative)
	}
	fmt.Fprintf(b, "%s%s_sum %s\n%s%s_count %d\n", prefix, name, formatFloat(h.sum), prefix, name, cumulative)
}

// formatCount formats a counter.
func formatCount(n uint64) string { return strconv.FormatUint(n, 10) }

// formatFloat formats a value in the fewest digits that read back as the same
// float64, without an exponent (0.01, 300, 1772370001.25).
func formatFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// unixSeconds is t as Unix time in seconds, to the millisecond; 0 for the
// zero time.
func unixSeconds(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return formatFloat(float64(t.UnixMilli()) / 1000)
}
