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

// everyFigure has a restarter that passes, one that fails partway through
// each phase, one whose every phase failed and one that stopped after its
// first restarts, so that each row of the table and each target takes each
// of its branches.
func everyFigure() *Report {
	return &Report{
		Settings: Settings{Restarts: 4, IdleSeconds: 1.5, FootprintRestarts: 2000, TermRuns: 3,
			ChurnRestarts: 8, Clients: 16, StormSignals: 300, StormRuns: 2},
		Results: []Result{
			{Label: "floor", Floor: true,
				Latency: &LatencyResult{ToExec: Summarize([]float64{1, 1.1, 1.2, 1.3}), ToLive: Summarize([]float64{5, 6}),
					IdleHWMKiB: 2048, IdleCPUMs: 0.4, Restarts: 2000, RestartHWMKiB: 3072, RestartCPUMs: 900, CPUPerRestartMs: 0.45},
				Shutdown: &ShutdownResult{ToExit: Summarize([]float64{1, 2, 3})}},
			{Label: "restarter",
				Latency: &LatencyResult{ToExec: Summarize([]float64{1.2, 1.3, 1.4, 1.5}), ToLive: Summarize([]float64{6, 7}),
					IdleHWMKiB: 3900, IdleCPUMs: 1.6, Restarts: 2000, RestartHWMKiB: 6000, RestartCPUMs: 1400, CPUPerRestartMs: 0.7},
				Shutdown: &ShutdownResult{ToExit: Summarize([]float64{4, 5, 6})},
				Churn:    &ChurnResult{Restarts: 8, Clients: 16, Sent: 5000, OK: 5000},
				Storm: &StormResult{Runs: make([]StormRun, 2), Survived: 2, ServiceSurvived: 2, Requests: 900,
					PeakProcesses: 5, ExitMs: Summarize([]float64{12, 14})},
				Gate: &GateResult{Runs: 10, ClearToFork: Summarize([]float64{0.2, 0.4}), ClearToExec: Summarize([]float64{1.5, 2.5}), ResolutionMs: 0.05}},
			{Label: "hot-restarter.py",
				Latency: &LatencyResult{ToExec: Summarize([]float64{3, 4, 5}), ToLive: Summarize([]float64{9, 10}),
					IdleHWMKiB: 9000, IdleCPUMs: 3, Restarts: 20, RestartHWMKiB: 9500, RestartCPUMs: 80, CPUPerRestartMs: 4},
				Shutdown: &ShutdownResult{ToExit: Summarize([]float64{20, 30}), Error: "run 3: hung"},
				Churn:    &ChurnResult{Restarts: 8, Clients: 16, Sent: 700, OK: 690, Failed: 10, Refused: 4, Reset: 3, Other: 1, Non200: 2, Error: "epoch 5 never LIVE"},
				Storm: &StormResult{Runs: make([]StormRun, 2), Survived: 1, ServiceSurvived: 0, Requests: 400, FailedRequests: 37,
					Zombies: 3, PeakProcesses: 40, ExitMs: Summarize([]float64{250})},
				Gate: &GateResult{Runs: 4, ClearToFork: Summarize([]float64{6, 7}), ClearToExec: Summarize([]float64{8, 9}), ResolutionMs: 0.05, Error: "run 2: no fork"}},
			{Label: "broken",
				Latency:  &LatencyResult{ToExec: Summarize(nil), ToLive: Summarize(nil), Error: "never LIVE"},
				Shutdown: &ShutdownResult{ToExit: Summarize(nil), Error: "never LIVE"},
				Churn:    &ChurnResult{Error: "never LIVE"},
				Storm:    &StormResult{ExitMs: Summarize(nil), Error: "never LIVE"},
				Gate:     &GateResult{Error: "never LIVE"}},
			{Label: "idle only",
				Latency: &LatencyResult{ToExecMs: []float64{2}, ToExec: Summarize([]float64{2}), ToLive: Summarize([]float64{8}), IdleCPUMs: 1, Error: "restart 2: never LIVE"}},
		},
	}
}

func TestMarkdownAndTargetsOfEveryFigure(t *testing.T) {
	r := everyFigure()
	var b strings.Builder
	r.WriteMarkdown(&b)
	b.WriteString("\n")
	WriteTargets(&b, r.Targets())
	want := `| measurement                                                          | floor       | restarter          | hot-restarter.py           | broken | idle only   |
| -------------------------------------------------------------------- | ----------- | ------------------ | -------------------------- | ------ | ----------- |
| SIGHUP → child executing, p50 / p99 ms (4 restarts)                  | 1.15 / 1.30 | 1.35 / 1.50        | 4.00 / 4.98                | error  | 2.00 / 2.00 |
| SIGHUP → new epoch LIVE, p50 / p99 ms                                | 5.50 / 5.99 | 6.50 / 6.99        | 9.50 / 9.99                | error  | 8.00 / 8.00 |
| idle 1.5s: peak RSS MiB / CPU ms                                     | 2.00 / 0    | 3.81 / 2           | 8.79 / 3                   | error  | — / 1       |
| 2000 restarts: peak RSS MiB / CPU ms                                 | 3.00 / 900  | 5.86 / 1400        | 9.28 / 80                  | error  | —           |
| CPU per hot restart, ms                                              | 0.45        | 0.70               | 4.00                       | error  | —           |
| SIGTERM → exit, p50 / p99 ms (3 runs)                                | 2.00 / 2.98 | 5.00 / 5.98        | 25.00 / 29.90              | error  | —           |
| churn 8 restarts × 16 clients: sent / failed (refused, reset, other) | —           | 5000 / 0 (0, 0, 0) | 700 / 10 (4, 3, 3) aborted | error  | —           |
| storm 300 SIGHUPs × 2: survived / zombies / peak processes           | —           | 2 of 2 / 0 / 5     | 1 of 2 / 3 / 40            | error  | —           |
| storm: service up at SIGTERM / storm end → exit p50 ms               | —           | 2 of 2 / 13        | 0 of 2 / 250               | —      | —           |
| storm: requests through it / failed                                  | —           | 900 / 0            | 400 / 37                   | —      | —           |
| init gate: flag clear → queued epoch forked, p50 / p99 ms            | —           | 0.30 / 0.40 (10)   | 6.50 / 6.99 (4)            | —      | —           |
| init gate: flag clear → queued epoch executing, p50 / p99 ms         | —           | 2.00 / 2.49        | 8.50 / 8.99                | —      | —           |

| restarter        | target                                                                                            | verdict | measured                                    |
| ---------------- | ------------------------------------------------------------------------------------------------- | ------- | ------------------------------------------- |
| restarter        | SIGHUP → child executing p50 within 1 ms of the floor                                             | met     | 1.35 ms vs floor 1.15 ms: +0.20 ms          |
| restarter        | SIGHUP → child executing p50 within 0.3 ms of the floor (issue 19)                                | met     | 1.35 ms vs floor 1.15 ms: +0.20 ms          |
| restarter        | SIGHUP → child executing p50: at most half of hot-restarter.py's distance to the floor (issue 19) | met     | +0.20 ms vs +2.85 ms                        |
| restarter        | CPU per hot restart within 1 ms of the floor's (issue 19)                                         | met     | 0.70 ms vs floor 0.45 ms: +0.25 ms          |
| restarter        | idle RSS < 7 MiB                                                                                  | met     | peak 3.81 MiB (VmHWM)                       |
| restarter        | idle RSS ≤ 4 MiB fresh (issue 14)                                                                 | met     | peak 3.81 MiB (VmHWM)                       |
| restarter        | RSS ≤ 6 MiB after 2000 hot restarts (issue 14)                                                    | met     | peak 5.86 MiB (VmHWM) after 2000            |
| restarter        | SIGTERM → exit < 50 ms                                                                            | met     | p50 5.00 ms, p99 5.98 ms                    |
| restarter        | zero failed requests over 8 restarts with 16 clients                                              | met     | 0 failed of 5000                            |
| restarter        | storm survived with zero zombies                                                                  | met     | 2 of 2 runs, 0 zombies                      |
| restarter        | storm: service up through every storm, zero failed requests                                       | met     | 2 of 2 runs, 0 failed of 900 requests       |
| restarter        | init gate: flag clear → queued epoch forked p50 ≤ 5 ms                                            | met     | p50 0.30 ms, p99 0.40 ms over 10 (±0.05 ms) |
| restarter        | init gate: flag clear → queued epoch forked p50 ≤ 1 ms (issue 19)                                 | met     | p50 0.30 ms, p99 0.40 ms over 10 (±0.05 ms) |
| hot-restarter.py | SIGHUP → child executing p50 within 1 ms of the floor                                             | missed  | 4.00 ms vs floor 1.15 ms: +2.85 ms          |
| hot-restarter.py | SIGHUP → child executing p50 within 0.3 ms of the floor (issue 19)                                | missed  | 4.00 ms vs floor 1.15 ms: +2.85 ms          |
| hot-restarter.py | CPU per hot restart within 1 ms of the floor's (issue 19)                                         | missed  | 4.00 ms vs floor 0.45 ms: +3.55 ms          |
| hot-restarter.py | idle RSS < 7 MiB                                                                                  | missed  | peak 8.79 MiB (VmHWM)                       |
| hot-restarter.py | idle RSS ≤ 4 MiB fresh (issue 14)                                                                 | missed  | peak 8.79 MiB (VmHWM)                       |
| hot-restarter.py | SIGTERM → exit < 50 ms                                                                            | missed  | p50 25.00 ms, p99 29.90 ms                  |
| hot-restarter.py | zero failed requests over 8 restarts with 16 clients                                              | missed  | 10 failed of 700                            |
| hot-restarter.py | storm survived with zero zombies                                                                  | missed  | 1 of 2 runs, 3 zombies                      |
| hot-restarter.py | storm: service up through every storm, zero failed requests                                       | missed  | 0 of 2 runs, 37 failed of 400 requests      |
| hot-restarter.py | init gate: flag clear → queued epoch forked p50 ≤ 5 ms                                            | missed  | p50 6.50 ms, p99 6.99 ms over 4 (±0.05 ms)  |
| hot-restarter.py | init gate: flag clear → queued epoch forked p50 ≤ 1 ms (issue 19)                                 | missed  | p50 6.50 ms, p99 6.99 ms over 4 (±0.05 ms)  |
| broken           | zero failed requests over 0 restarts with 0 clients                                               | missed  | 0 failed of 0                               |
| idle only        | SIGHUP → child executing p50 within 1 ms of the floor                                             | met     | 2.00 ms vs floor 1.15 ms: +0.85 ms          |
| idle only        | SIGHUP → child executing p50 within 0.3 ms of the floor (issue 19)                                | missed  | 2.00 ms vs floor 1.15 ms: +0.85 ms          |
| idle only        | SIGHUP → child executing p50: at most half of hot-restarter.py's distance to the floor (issue 19) | met     | +0.85 ms vs +2.85 ms                        |
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("markdown (-want +got):\n%s", diff)
	}
}
