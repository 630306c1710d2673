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
			{Label: "floor", Floor: true, Latency: &LatencyResult{ToExec: Summarize([]float64{2, 3, 4})}},
			{Label: "restarter",
				Latency:  &LatencyResult{ToExec: Summarize([]float64{3, 3.5, 4}), IdleHWMKiB: 6 * 1024},
				Shutdown: &ShutdownResult{ToExit: Summarize([]float64{10, 60})}},
		},
	}
	var b strings.Builder
	r.WriteMarkdown(&b)
	got := b.String()
	for _, want := range []string{
		"| SIGHUP → child executing, p50 / p99 ms (3 restarts) | 3.00 / 3.98 | 3.50 / 3.99   |",
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
		"idle RSS < 7 MiB: met",
		"idle RSS ≤ 4 MiB fresh (issue 14): missed",
		"SIGTERM → exit < 50 ms: missed",
	}
	if diff := cmp.Diff(want, verdicts); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
}
