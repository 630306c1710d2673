package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteTablePadsColumns(t *testing.T) {
	var b strings.Builder
	writeTable(&b, []string{"a", "long header"}, [][]string{{"wide cell", "→"}})
	want := "" +
		"| a         | long header |\n" +
		"| --------- | ----------- |\n" +
		"| wide cell | →           |\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func TestMarkdownSkipsUnmeasuredRowsAndJudgesTargets(t *testing.T) {
	r := &Report{
		Settings: Settings{Restarts: 3, IdleSeconds: 1, FootprintRestarts: 3, TermRuns: 2},
		Results: []Result{
			{Label: "floor", Floor: true, Latency: &LatencyResult{ToExec: Summarize([]float64{2, 3, 4}), Restarts: 3, CPUPerRestartMs: 2}},
			{Label: "restarter",
				Latency:  &LatencyResult{ToExec: Summarize([]float64{3, 3.2, 4}), IdleHWMKiB: 6 * 1024, Restarts: 3, CPUPerRestartMs: 3.5},
				Shutdown: &ShutdownResult{ToExit: Summarize([]float64{10, 60})}},
			{Label: "hot-restarter.py", Latency: &LatencyResult{ToExec: Summarize([]float64{3, 4, 5})}},
		},
	}
	var b strings.Builder
	r.WriteMarkdown(&b)
	got := b.String()
	for _, want := range []string{
		"| SIGHUP → child executing, p50 / p99 ms (3 restarts) | 3.00 / 3.98 | 3.20 / 3.98   | 4.00 / 4.98      |",
		"| CPU per hot restart, ms                             | 2.00        | 3.50          | —                |",
		"| SIGTERM → exit, p50 / p99 ms (2 runs)",
		"| 35.00 / 59.50 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("markdown lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "churn") || strings.Contains(got, "storm") {
		t.Errorf("markdown has rows for unmeasured churn/storm:\n%s", got)
	}

	var verdicts []string
	for _, tg := range r.Targets() {
		verdicts = append(verdicts, tg.Name+": "+map[bool]string{true: "met", false: "missed"}[tg.Met])
	}
	want := []string{
		"SIGHUP → child executing p50 within 1 ms of the floor: met",
		"SIGHUP → child executing p50 within 0.3 ms of the floor (issue 19): met",
		"SIGHUP → child executing p50: at most half of hot-restarter.py's distance to the floor (issue 19): met",
		"CPU per hot restart within 1 ms of the floor's (issue 19): missed",
		"idle RSS < 7 MiB: met",
		"idle RSS ≤ 4 MiB fresh (issue 14): missed",
		"SIGTERM → exit < 50 ms: missed",
		// hot-restarter.py, against the floor only:
		"SIGHUP → child executing p50 within 1 ms of the floor: met",
		"SIGHUP → child executing p50 within 0.3 ms of the floor (issue 19): missed",
	}
	if diff := cmp.Diff(want, verdicts); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
}
