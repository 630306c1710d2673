// Command bench measures a hot restarter the way operators feel it: hot
// restart latency against the machine's floor, shutdown latency, footprint,
// traffic through restarts and a signal storm, driving fakeenvoy. It prints
// a markdown table, writes the figures as JSON and plots the restart
// latency distribution as a PNG. See docs/BENCHMARKS.md.
//
//	go run ./tools/bench [--quick] [--restarter this] [--restarter "python3 /tmp/hot-restarter.py"]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/repeated"
)

// bench holds the settings every measurement reads.
type bench struct {
	restarter, fakeenvoy string // binaries
	keep                 bool

	restarts, footprintRestarts, termRuns int
	churnRestarts, clients                int
	stormSignals, stormRuns               int
	gateRuns                              int
	idle, settle, stormSettle, termWait   time.Duration
	drainTime, parentShutdownTime         time.Duration
}

func main() {
	if os.Getenv(floorRoleEnv) == "floor" {
		os.Exit(floorMain(os.Args[1:]))
	}
	os.Exit(run())
}

func run() int {
	b := &bench{}
	var restarters repeated.Strings
	flag.Var(&restarters, "restarter", "a restarter command line to measure, split on spaces, the start script appended; repeatable. \"this\" is this project's restarter with --term-wait (default: this)")
	flag.StringVar(&b.restarter, "restarter-bin", os.Getenv("RESTARTER_BENCH_RESTARTER"), "this project's restarter binary (default $RESTARTER_BENCH_RESTARTER, else built with go build)")
	flag.StringVar(&b.fakeenvoy, "fakeenvoy-bin", os.Getenv("RESTARTER_BENCH_FAKEENVOY"), "the fakeenvoy binary (default $RESTARTER_BENCH_FAKEENVOY, else built with go build)")
	quick := flag.Bool("quick", false, "small run counts: the whole bench in well under a minute")
	flag.IntVar(&b.restarts, "restarts", 200, "hot restarts timed for latency")
	flag.DurationVar(&b.idle, "idle", 10*time.Second, "how long the restarter idles for the footprint")
	flag.IntVar(&b.footprintRestarts, "footprint-restarts", 100, "restarts after which the footprint is read (at most --restarts)")
	flag.IntVar(&b.termRuns, "term-runs", 20, "SIGTERM → exit runs")
	flag.IntVar(&b.churnRestarts, "churn-restarts", 50, "hot restarts under traffic")
	flag.IntVar(&b.clients, "clients", 16, "concurrent HTTP clients under churn")
	flag.IntVar(&b.stormSignals, "storm-signals", 1000, "SIGHUPs in a storm")
	flag.IntVar(&b.stormRuns, "storm-runs", 3, "storms")
	flag.IntVar(&b.gateRuns, "gate-runs", 50, "SIGHUP pairs timed for the init gate's wake-up (this project's restarter only)")
	flag.DurationVar(&b.stormSettle, "storm-settle", time.Second, "wait after a storm before counting zombies and sending SIGTERM")
	flag.DurationVar(&b.settle, "settle", 250*time.Millisecond, "wait after a new epoch is LIVE before the next SIGHUP (more than --parent-shutdown-time, so one epoch is left)")
	flag.DurationVar(&b.termWait, "term-wait", 2*time.Second, "--term-wait given to this project's restarter")
	flag.DurationVar(&b.drainTime, "drain-time", 100*time.Millisecond, "fakeenvoy's --fake-drain-time")
	flag.DurationVar(&b.parentShutdownTime, "parent-shutdown-time", 150*time.Millisecond, "fakeenvoy's --fake-parent-shutdown-time")
	phases := flag.String("phases", "latency,shutdown,churn,storm,gate", "measurements to run (latency includes the footprint)")
	jsonPath := flag.String("json", "bench-results.json", "where to write the figures as JSON (empty: nowhere)")
	plotPath := flag.String("plot", "bench-latency.png", "where to write the latency plot (empty: nowhere)")
	replot := flag.String("replot", "", "only redraw the plot (--plot) from a JSON file an earlier run wrote")
	flag.BoolVar(&b.keep, "keep", false, "keep every sandbox directory (logs, state files) instead of removing it")
	flag.Parse()
	keepSandboxes = b.keep
	if *replot != "" {
		if err := replotFrom(*replot, outputPath(*plotPath)); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		return 0
	}
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		defaults := map[string]func(){
			"restarts":           func() { b.restarts = 20 },
			"idle":               func() { b.idle = time.Second },
			"footprint-restarts": func() { b.footprintRestarts = 20 },
			"term-runs":          func() { b.termRuns = 3 },
			"churn-restarts":     func() { b.churnRestarts = 8 },
			"storm-signals":      func() { b.stormSignals = 300 },
			"storm-runs":         func() { b.stormRuns = 1 },
			"gate-runs":          func() { b.gateRuns = 10 },
			"storm-settle":       func() { b.stormSettle = 300 * time.Millisecond },
		}
		for name, apply := range defaults {
			if !set[name] {
				apply()
			}
		}
	}
	b.footprintRestarts = min(b.footprintRestarts, b.restarts)
	if len(restarters) == 0 {
		restarters = repeated.Strings{"this"}
	}
	want := map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		want[strings.TrimSpace(p)] = true
	}

	removeRegions, err := fakeenvoytest.LogRegions()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	registry.Lock()
	registry.removeRegions = removeRegions
	registry.Unlock()

	// The bench adopts whatever a restarter leaves orphaned, so that it can
	// count and reap it.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-interrupted
		fmt.Fprintf(os.Stderr, "\nbench: %v: stopping every restarter and removing the sandboxes\n", sig)
		closeAll()
		os.Exit(130)
	}()
	defer closeAll()
	defer func() {
		if p := recover(); p != nil {
			closeAll()
			panic(p)
		}
	}()

	binDir, err := os.MkdirTemp("", "restarter-bench-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	if err := b.buildBinaries(binDir); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}

	report := &Report{Machine: describeMachine(), Settings: Settings{
		Restarts: b.restarts, IdleSeconds: b.idle.Seconds(), FootprintRestarts: b.footprintRestarts,
		TermRuns: b.termRuns, ChurnRestarts: b.churnRestarts, Clients: b.clients,
		StormSignals: b.stormSignals, StormRuns: b.stormRuns,
		DrainTimeS: b.drainTime.Seconds(), ParentShutdownS: b.parentShutdownTime.Seconds(),
		SettleMs: ms(b.settle), TermWaitS: b.termWait.Seconds(), StormSettleMs: ms(b.stormSettle),
	}}
	floor := Restarter{Label: "floor (minimal Go)", Argv: []string{self}, Env: []string{floorRoleEnv + "=floor"}}
	var measured []Restarter
	for _, spec := range restarters {
		measured = append(measured, b.parseRestarter(spec))
	}

	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	}
	all := append([]Restarter{floor}, measured...)
	var latencies []LatencyResult
	if want["latency"] {
		progress("all %d side by side: idle %v, then %d hot restarts each, taking turns", len(all), b.idle, b.restarts)
		latencies = b.runLatency(all)
	}
	for i, r := range all {
		res := Result{Label: r.Label, Command: r.Argv, Floor: r.Label == floor.Label}
		if latencies != nil {
			res.Latency = &latencies[i]
			reportError(r.Label, "latency", latencies[i].Error)
		}
		if want["shutdown"] {
			progress("%s: %d SIGTERM runs", r.Label, b.termRuns)
			s := b.runShutdown(r)
			res.Shutdown = &s
			reportError(r.Label, "shutdown", s.Error)
		}
		if !res.Floor && want["churn"] {
			progress("%s: %d restarts under %d clients", r.Label, b.churnRestarts, b.clients)
			c := b.runChurn(r)
			res.Churn = &c
			reportError(r.Label, "churn", c.Error)
		}
		if !res.Floor && want["storm"] {
			progress("%s: %d storms of %d SIGHUPs", r.Label, b.stormRuns, b.stormSignals)
			s := b.runStorm(r)
			res.Storm = &s
			reportError(r.Label, "storm", s.Error)
		}
		if r.This && want["gate"] {
			progress("%s: %d SIGHUP pairs through the init gate", r.Label, b.gateRuns)
			g := b.runGate(r)
			res.Gate = &g
			reportError(r.Label, "gate", g.Error)
		}
		report.Results = append(report.Results, res)
	}

	m := report.Machine
	fmt.Printf("Machine: %d CPUs, %s, Linux %s, %s, load average at start %s\n\n", m.CPUs, m.CPUModel, m.Kernel, m.GoVersion, m.LoadAvg)
	report.WriteMarkdown(os.Stdout)
	fmt.Println()
	WriteTargets(os.Stdout, report.Targets())

	if *jsonPath != "" {
		out, _ := json.MarshalIndent(report, "", "  ")
		path := outputPath(*jsonPath)
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		progress("figures written to %s", path)
	}
	if *plotPath != "" && want["latency"] {
		path := outputPath(*plotPath)
		if err := report.plot(path); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		progress("plot written to %s", path)
	}
	return 0
}

// plot draws the SIGHUP → child executing distribution of every restarter.
func (r *Report) plot(path string) error {
	var series []Series
	for _, res := range r.Results {
		if res.Latency != nil && len(res.Latency.ToExecMs) > 0 {
			series = append(series, Series{Label: res.Label, Samples: res.Latency.ToExecMs})
		}
	}
	title := fmt.Sprintf("SIGHUP -> new epoch executing, %d hot restarts, %d CPUs", r.Settings.Restarts, r.Machine.CPUs)
	return WriteCDFPlot(path, title, "milliseconds", series)
}

// replotFrom redraws the plot from a JSON report.
func replotFrom(jsonPath, plotPath string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	return r.plot(plotPath)
}

func reportError(label, phase, msg string) {
	if msg != "" {
		fmt.Fprintf(os.Stderr, "bench: %s: %s: %s\n", label, phase, msg)
	}
}

// parseRestarter turns a --restarter value into a command line.
func (b *bench) parseRestarter(spec string) Restarter {
	if spec == "this" || spec == "" {
		return Restarter{Label: "restarter", Argv: []string{b.restarter, "--term-wait", b.termWait.String()}, This: true}
	}
	argv := strings.Fields(spec)
	return Restarter{Label: filepath.Base(argv[len(argv)-1]), Argv: argv}
}

// buildBinaries builds this project's restarter and fakeenvoy into dir
// unless their paths were given: from the module the bench runs in, or
// under `bazel run` from the workspace.
func (b *bench) buildBinaries(dir string) error {
	if b.restarter != "" && b.fakeenvoy != "" {
		return nil
	}
	root, err := moduleRoot()
	if err != nil {
		return fmt.Errorf("cannot build restarter and fakeenvoy (%w); give --restarter-bin and --fakeenvoy-bin", err)
	}
	for _, target := range []struct {
		path *string
		pkg  string
	}{{&b.restarter, "./restarter"}, {&b.fakeenvoy, "./fakeenvoy"}} {
		if *target.path != "" {
			continue
		}
		out := filepath.Join(dir, filepath.Base(target.pkg))
		cmd := exec.Command("go", "build", "-o", out, target.pkg)
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
		// The release build: static, as `bazel build` (pure = "on") makes it.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		fmt.Fprintf(os.Stderr, "bench: CGO_ENABLED=0 go build -o %s %s\n", out, target.pkg)
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", target.pkg, err)
		}
		*target.path = out
	}
	return nil
}

// moduleRoot is the directory of this repository's go.mod.
func moduleRoot() (string, error) {
	dir := os.Getenv("BUILD_WORKSPACE_DIRECTORY") // bazel run
	cmd := exec.Command("go", "env", "GOMOD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the repository's Go module")
	}
	return filepath.Dir(gomod), nil
}

// outputPath resolves a relative output path against the user's directory
// under `bazel run`.
func outputPath(p string) string {
	if wd := os.Getenv("BUILD_WORKING_DIRECTORY"); wd != "" && !filepath.IsAbs(p) {
		return filepath.Join(wd, p)
	}
	return p
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}
