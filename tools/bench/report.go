package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Report is everything one bench run measured; it is also the JSON output.
type Report struct {
	Machine  Machine  `json:"machine"`
	Settings Settings `json:"settings"`
	Results  []Result `json:"results"`
}

// Machine describes where the figures were taken.
type Machine struct {
	CPUs      int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	LoadAvg   string `json:"loadavg_at_start"`
}

// Settings are the run counts and timings the figures depend on.
type Settings struct {
	Restarts          int     `json:"restarts"`
	IdleSeconds       float64 `json:"idle_seconds"`
	FootprintRestarts int     `json:"footprint_restarts"`
	TermRuns          int     `json:"term_runs"`
	ChurnRestarts     int     `json:"churn_restarts"`
	Clients           int     `json:"clients"`
	StormSignals      int     `json:"storm_signals"`
	StormRuns         int     `json:"storm_runs"`
	DrainTimeS        float64 `json:"drain_time_s"`
	ParentShutdownS   float64 `json:"parent_shutdown_time_s"`
	SettleMs          float64 `json:"settle_ms"`
	TermWaitS         float64 `json:"term_wait_s"`
	StormSettleMs     float64 `json:"storm_settle_ms"`
}

// Result is every measurement of one restarter command line.
type Result struct {
	Label    string          `json:"label"`
	Command  []string        `json:"command"`
	Floor    bool            `json:"floor"`
	Latency  *LatencyResult  `json:"latency,omitempty"`
	Shutdown *ShutdownResult `json:"shutdown,omitempty"`
	Churn    *ChurnResult    `json:"churn,omitempty"`
	Storm    *StormResult    `json:"storm,omitempty"`
	Gate     *GateResult     `json:"init_gate,omitempty"`
}

// Target is one of the targets, judged for one restarter.
type Target struct {
	Restarter string
	Name      string
	Met       bool
	Measured  string
}

const dash = "—"

func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return dash
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func pair(s Summary) string {
	if s.N == 0 {
		return dash
	}
	return num(s.P50, 2) + " / " + num(s.P99, 2)
}

func mib(kib int64) string {
	if kib == 0 {
		return dash
	}
	return fmt.Sprintf("%.2f", float64(kib)/1024)
}

// WriteMarkdown writes the figures as one markdown table, a column per
// restarter, then the targets.
func (r *Report) WriteMarkdown(w io.Writer) {
	header := []string{"measurement"}
	for _, res := range r.Results {
		header = append(header, res.Label)
	}
	var rows [][]string
	for _, def := range figureRows {
		if cells, measured := def.cells(r.Settings, r.Results); measured {
			rows = append(rows, cells)
		}
	}
	writeTable(w, header, rows)
}

// figureRow is one row of the figures table: its label, which may quote the
// settings, and how one restarter's result fills its cell (dash when that
// restarter was not measured).
type figureRow struct {
	label func(Settings) string
	cell  func(Result) string
}

// cells is the row's label and a cell per result; measured is false when
// every cell is a dash, and the row is left out.
func (def figureRow) cells(s Settings, results []Result) (cells []string, measured bool) {
	cells = []string{def.label(s)}
	for _, res := range results {
		c := def.cell(res)
		measured = measured || c != dash
		cells = append(cells, c)
	}
	return cells, measured
}

// figureRows are the table's rows, top to bottom.
var figureRows = []figureRow{{
	label: func(s Settings) string {
		return fmt.Sprintf("SIGHUP → child executing, p50 / p99 ms (%d restarts)", s.Restarts)
	},
	cell: latencyCell(func(l *LatencyResult) string { return pair(l.ToExec) }),
}, {
	label: fixed("SIGHUP → new epoch LIVE, p50 / p99 ms"),
	cell:  latencyCell(func(l *LatencyResult) string { return pair(l.ToLive) }),
}, {
	label: func(s Settings) string { return fmt.Sprintf("idle %gs: peak RSS MiB / CPU ms", s.IdleSeconds) },
	cell:  latencyCell(func(l *LatencyResult) string { return mib(l.IdleHWMKiB) + " / " + num(l.IdleCPUMs, 0) }),
}, {
	label: func(s Settings) string { return fmt.Sprintf("%d restarts: peak RSS MiB / CPU ms", s.FootprintRestarts) },
	cell:  footprintCell(func(l *LatencyResult) string { return mib(l.RestartHWMKiB) + " / " + num(l.RestartCPUMs, 0) }),
}, {
	label: fixed("CPU per hot restart, ms"),
	cell:  footprintCell(func(l *LatencyResult) string { return num(l.CPUPerRestartMs, 2) }),
}, {
	label: func(s Settings) string { return fmt.Sprintf("SIGTERM → exit, p50 / p99 ms (%d runs)", s.TermRuns) },
	cell:  shutdownCell,
}, {
	label: func(s Settings) string {
		return fmt.Sprintf("churn %d restarts × %d clients: sent / failed (refused, reset, other)", s.ChurnRestarts, s.Clients)
	},
	cell: churnCell,
}, {
	label: func(s Settings) string {
		return fmt.Sprintf("storm %d SIGHUPs × %d: survived / zombies / peak processes", s.StormSignals, s.StormRuns)
	},
	cell: stormCell,
}, {
	label: fixed("storm: service up at SIGTERM / storm end → exit p50 ms"),
	cell: stormRunsCell(func(st *StormResult) string {
		return fmt.Sprintf("%d of %d / %s", st.ServiceSurvived, len(st.Runs), num(st.ExitMs.P50, 0))
	}),
}, {
	label: fixed("storm: requests through it / failed"),
	cell:  stormRunsCell(func(st *StormResult) string { return fmt.Sprintf("%d / %d", st.Requests, st.FailedRequests) }),
}, {
	label: fixed("init gate: flag clear → queued epoch forked, p50 / p99 ms"),
	cell: gateCell(func(g *GateResult) string {
		return fmt.Sprintf("%s / %s (%d)", num(g.ClearToFork.P50, 2), num(g.ClearToFork.P99, 2), g.Runs)
	}),
}, {
	label: fixed("init gate: flag clear → queued epoch executing, p50 / p99 ms"),
	cell: gateCell(func(g *GateResult) string {
		return fmt.Sprintf("%s / %s", num(g.ClearToExec.P50, 2), num(g.ClearToExec.P99, 2))
	}),
}}

// fixed is a label that quotes no setting.
func fixed(label string) func(Settings) string {
	return func(Settings) string { return label }
}

// latencyCell fills a cell from the latency phase: dash when it did not
// run, "error" when it failed before its first restart.
func latencyCell(f func(*LatencyResult) string) func(Result) string {
	return func(res Result) string {
		if res.Latency == nil {
			return dash
		}
		if res.Latency.Error != "" && len(res.Latency.ToExecMs) == 0 {
			return "error"
		}
		return f(res.Latency)
	}
}

// footprintCell is a latencyCell read after the footprint's restarts: dash
// when there were none.
func footprintCell(f func(*LatencyResult) string) func(Result) string {
	return latencyCell(func(l *LatencyResult) string {
		if l.Restarts == 0 {
			return dash
		}
		return f(l)
	})
}

func shutdownCell(res Result) string {
	if res.Shutdown == nil {
		return dash
	}
	if res.Shutdown.Error != "" && res.Shutdown.ToExit.N == 0 {
		return "error"
	}
	return pair(res.Shutdown.ToExit)
}

func churnCell(res Result) string {
	c := res.Churn
	if c == nil {
		return dash
	}
	if c.Error != "" && c.Sent == 0 {
		return "error"
	}
	out := fmt.Sprintf("%d / %d (%d, %d, %d)", c.Sent, c.Failed, c.Refused, c.Reset, c.Other+c.Non200)
	if c.Error != "" {
		out += " aborted"
	}
	return out
}

func stormCell(res Result) string {
	st := res.Storm
	if st == nil {
		return dash
	}
	if len(st.Runs) == 0 {
		return "error"
	}
	return fmt.Sprintf("%d of %d / %d / %d", st.Survived, len(st.Runs), st.Zombies, st.PeakProcesses)
}

// stormRunsCell fills a cell from the storms that ran: dash when none did
// (stormCell says whether they failed).
func stormRunsCell(f func(*StormResult) string) func(Result) string {
	return func(res Result) string {
		if res.Storm == nil || len(res.Storm.Runs) == 0 {
			return dash
		}
		return f(res.Storm)
	}
}

// gateCell fills a cell from the init gate's runs: dash when none ran.
func gateCell(f func(*GateResult) string) func(Result) string {
	return func(res Result) string {
		if res.Gate == nil || res.Gate.Runs == 0 {
			return dash
		}
		return f(res.Gate)
	}
}

// writeTable writes a markdown table with padded columns.
func writeTable(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len([]rune(h))
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + c + strings.Repeat(" ", widths[i]-len([]rune(c))) + " |")
		}
		fmt.Fprintln(w, b.String())
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}

// referenceLabel is the column of Envoy's restarter/hot-restarter.py, the
// reference some targets are relative to.
const referenceLabel = "hot-restarter.py"

// Targets judges every restarter that is not the floor against the issue's
// targets.
func (r *Report) Targets() []Target {
	base := r.baselines()
	var out []Target
	for _, res := range r.Results {
		if res.Floor {
			continue
		}
		add := func(name string, met bool, measured string) {
			out = append(out, Target{Restarter: res.Label, Name: name, Met: met, Measured: measured})
		}
		for _, judge := range targetJudges {
			judge(res, base, add)
		}
	}
	return out
}

// baselines are the latencies some targets are relative to: the floor's
// and referenceLabel's, nil when not measured.
type baselines struct {
	floor, reference *LatencyResult
}

func (r *Report) baselines() baselines {
	var base baselines
	for _, res := range r.Results {
		switch {
		case res.Floor:
			base.floor = res.Latency
		case res.Label == referenceLabel:
			base.reference = res.Latency
		}
	}
	return base
}

// addTarget records one target's verdict for the restarter being judged.
type addTarget func(name string, met bool, measured string)

// targetJudges judge one restarter each against the targets of one
// measurement, adding only those it has the figures for, in the order the
// targets table lists them.
var targetJudges = []func(res Result, base baselines, add addTarget){
	execLatencyTargets,
	cpuPerRestartTargets,
	idleRSSTargets,
	restartsRSSTargets,
	shutdownTargets,
	churnTargets,
	stormTargets,
	gateTargets,
}

func execLatencyTargets(res Result, base baselines, add addTarget) {
	l, floor := res.Latency, base.floor
	if l == nil || floor == nil || l.ToExec.N <= 0 || floor.ToExec.N <= 0 {
		return
	}
	d := l.ToExec.P50 - floor.ToExec.P50
	measured := fmt.Sprintf("%s ms vs floor %s ms: %+.2f ms", num(l.ToExec.P50, 2), num(floor.ToExec.P50, 2), d)
	add("SIGHUP → child executing p50 within 1 ms of the floor", d <= 1, measured)
	add("SIGHUP → child executing p50 within 0.3 ms of the floor (issue 19)", d <= 0.3, measured)
	// The reference is not judged against itself.
	if ref := base.reference; ref != nil && ref != l && ref.ToExec.N > 0 {
		refD := ref.ToExec.P50 - floor.ToExec.P50
		add("SIGHUP → child executing p50: at most half of "+referenceLabel+"'s distance to the floor (issue 19)", d <= refD/2,
			fmt.Sprintf("%+.2f ms vs %+.2f ms", d, refD))
	}
}

func cpuPerRestartTargets(res Result, base baselines, add addTarget) {
	l, floor := res.Latency, base.floor
	if l == nil || floor == nil || l.Restarts <= 0 || floor.Restarts <= 0 {
		return
	}
	d := l.CPUPerRestartMs - floor.CPUPerRestartMs
	add("CPU per hot restart within 1 ms of the floor's (issue 19)", d <= 1,
		fmt.Sprintf("%s ms vs floor %s ms: %+.2f ms", num(l.CPUPerRestartMs, 2), num(floor.CPUPerRestartMs, 2), d))
}

func idleRSSTargets(res Result, _ baselines, add addTarget) {
	l := res.Latency
	if l == nil || l.IdleHWMKiB <= 0 {
		return
	}
	measured := fmt.Sprintf("peak %s MiB (VmHWM)", mib(l.IdleHWMKiB))
	add("idle RSS < 7 MiB", l.IdleHWMKiB < 7*1024, measured)
	add("idle RSS ≤ 4 MiB fresh (issue 14)", l.IdleHWMKiB <= 4*1024, measured)
}

func restartsRSSTargets(res Result, _ baselines, add addTarget) {
	l := res.Latency
	if l == nil || l.RestartHWMKiB <= 0 || l.Restarts < 2000 {
		return
	}
	add("RSS ≤ 6 MiB after 2000 hot restarts (issue 14)", l.RestartHWMKiB <= 6*1024,
		fmt.Sprintf("peak %s MiB (VmHWM) after %d", mib(l.RestartHWMKiB), l.Restarts))
}

func shutdownTargets(res Result, _ baselines, add addTarget) {
	sd := res.Shutdown
	if sd == nil || sd.ToExit.N <= 0 {
		return
	}
	add("SIGTERM → exit < 50 ms", sd.ToExit.P99 < 50 && sd.Error == "",
		fmt.Sprintf("p50 %s ms, p99 %s ms", num(sd.ToExit.P50, 2), num(sd.ToExit.P99, 2)))
}

func churnTargets(res Result, _ baselines, add addTarget) {
	c := res.Churn
	if c == nil {
		return
	}
	add(fmt.Sprintf("zero failed requests over %d restarts with %d clients", c.Restarts, c.Clients),
		c.Failed == 0 && c.Error == "" && c.Sent > 0,
		fmt.Sprintf("%d failed of %d", c.Failed, c.Sent))
}

func stormTargets(res Result, _ baselines, add addTarget) {
	st := res.Storm
	if st == nil || len(st.Runs) == 0 {
		return
	}
	add("storm survived with zero zombies", st.Survived == len(st.Runs) && st.Zombies == 0,
		fmt.Sprintf("%d of %d runs, %d zombies", st.Survived, len(st.Runs), st.Zombies))
	add("storm: service up through every storm, zero failed requests", st.ServiceSurvived == len(st.Runs) && st.FailedRequests == 0,
		fmt.Sprintf("%d of %d runs, %d failed of %d requests", st.ServiceSurvived, len(st.Runs), st.FailedRequests, st.Requests))
}

func gateTargets(res Result, _ baselines, add addTarget) {
	g := res.Gate
	if g == nil || g.Runs <= 0 {
		return
	}
	measured := fmt.Sprintf("p50 %s ms, p99 %s ms over %d (±%s ms)", num(g.ClearToFork.P50, 2), num(g.ClearToFork.P99, 2), g.Runs, num(g.ResolutionMs, 2))
	add("init gate: flag clear → queued epoch forked p50 ≤ 5 ms", g.ClearToFork.P50 <= 5 && g.Error == "", measured)
	add("init gate: flag clear → queued epoch forked p50 ≤ 1 ms (issue 19)", g.ClearToFork.P50 <= 1 && g.Error == "", measured)
}

// WriteTargets writes the targets as a markdown table.
func WriteTargets(w io.Writer, targets []Target) {
	var rows [][]string
	for _, t := range targets {
		verdict := "missed"
		if t.Met {
			verdict = "met"
		}
		rows = append(rows, []string{t.Restarter, t.Name, verdict, t.Measured})
	}
	writeTable(w, []string{"restarter", "target", "verdict", "measured"}, rows)
}
