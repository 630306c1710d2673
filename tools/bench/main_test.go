package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/envoy-restarter/restarter/internal/repeated"
)

func parseForTest(t *testing.T, args ...string) (*bench, *options) {
	t.Helper()
	t.Setenv("RESTARTER_BENCH_RESTARTER", "")
	t.Setenv("RESTARTER_BENCH_FAKEENVOY", "")
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b, o, err := parseFlags(fs, args)
	if err != nil {
		t.Fatalf("parseFlags(%q): %v", args, err)
	}
	return b, o
}

func TestQuickLowersOnlyTheCountsNotGiven(t *testing.T) {
	b, o := parseForTest(t, "--quick", "--restarts", "50", "--storm-runs", "2", "--phases", "latency, gate")

	want := &bench{
		restarts: 50, footprintRestarts: 20, termRuns: 3, churnRestarts: 8, clients: 16,
		stormSignals: 300, stormRuns: 2, gateRuns: 10,
		idle: time.Second, settle: 250 * time.Millisecond, stormSettle: 300 * time.Millisecond, termWait: 2 * time.Second,
		drainTime: 100 * time.Millisecond, parentShutdownTime: 150 * time.Millisecond,
	}
	if diff := cmp.Diff(want, b, cmp.AllowUnexported(bench{})); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]bool{"latency": true, "gate": true}, o.want); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(repeated.Strings{"this"}, o.restarters); diff != "" {
		t.Errorf("restarters (-want +got):\n%s", diff)
	}
}

func TestFootprintRestartsAtMostTheTimedOnes(t *testing.T) {
	b, o := parseForTest(t, "--restarts", "5", "--restarter", "python3 hot-restarter.py", "--json", "")

	if b.restarts != 5 || b.footprintRestarts != 5 {
		t.Errorf("restarts %d, footprint restarts %d; want 5 and 5", b.restarts, b.footprintRestarts)
	}
	if diff := cmp.Diff(repeated.Strings{"python3 hot-restarter.py"}, o.restarters); diff != "" {
		t.Errorf("restarters (-want +got):\n%s", diff)
	}
	if o.jsonPath != "" || o.plotPath != "bench-latency.png" {
		t.Errorf("json %q, plot %q; want none and the default", o.jsonPath, o.plotPath)
	}
	for _, p := range []string{"latency", "shutdown", "churn", "storm", "gate"} {
		if !o.want[p] {
			t.Errorf("phase %s not wanted by default", p)
		}
	}
}
