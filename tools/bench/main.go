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
	b, o, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		return 2 // the flag package has said why
	}
	keepSandboxes = b.keep
	if o.replot != "" {
		err = replotFrom(o.replot, outputPath(o.plotPath))
	} else {
		err = b.benchmark(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

// options are the command line's choices beyond the measurements' settings.
type options struct {
	restarters                 repeated.Strings
	quick                      bool
	phases                     string
	want                       map[string]bool // the phases to run
	jsonPath, plotPath, replot string
}

// parseFlags reads the command line into the settings and the options:
// --quick's run counts where no flag gave one, the footprint's restarts at
// most the timed ones, and this project's restarter when none was given.
func parseFlags(fs *flag.FlagSet, args []string) (*bench, *options, error) {
	b, o := &bench{}, &options{}
	b.defineFlags(fs)
	o.defineFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if o.quick {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		for name, apply := range quickSettings {
			if !given[name] {
				apply(b)
			}
		}
	}
	b.footprintRestarts = min(b.footprintRestarts, b.restarts)
	if len(o.restarters) == 0 {
		o.restarters = repeated.Strings{"this"}
	}
	o.want = map[string]bool{}
	for _, p := range strings.Split(o.phases, ",") {
		o.want[strings.TrimSpace(p)] = true
	}
	return b, o, nil
}

// defineFlags defines the flags of the run counts, timings and binaries.
func (b *bench) defineFlags(fs *flag.FlagSet) {
	fs.StringVar(&b.restarter, "restarter-bin", os.Getenv("RESTARTER_BENCH_RESTARTER"), "this project's restarter binary (default $RESTARTER_BENCH_RESTARTER, else built with go build)")
	fs.StringVar(&b.fakeenvoy, "fakeenvoy-bin", os.Getenv("RESTARTER_BENCH_FAKEENVOY"), "the fakeenvoy binary (default $RESTARTER_BENCH_FAKEENVOY, else built with go build)")
	fs.IntVar(&b.restarts, "restarts", 200, "hot restarts timed for latency")
	fs.DurationVar(&b.idle, "idle", 10*time.Second, "how long the restarter idles for the footprint")
	fs.IntVar(&b.footprintRestarts, "footprint-restarts", 100, "restarts after which the footprint is read (at most --restarts)")
	fs.IntVar(&b.termRuns, "term-runs", 20, "SIGTERM → exit runs")
	fs.IntVar(&b.churnRestarts, "churn-restarts", 50, "hot restarts under traffic")
	fs.IntVar(&b.clients, "clients", 16, "concurrent HTTP clients under churn")
	fs.IntVar(&b.stormSignals, "storm-signals", 1000, "SIGHUPs in a storm")
	fs.IntVar(&b.stormRuns, "storm-runs", 3, "storms")
	fs.IntVar(&b.gateRuns, "gate-runs", 50, "SIGHUP pairs timed for the init gate's wake-up (this project's restarter only)")
	fs.DurationVar(&b.stormSettle, "storm-settle", time.Second, "wait after a storm before counting zombies and sending SIGTERM")
	fs.DurationVar(&b.settle, "settle", 250*time.Millisecond, "wait after a new epoch is LIVE before the next SIGHUP (more than --parent-shutdown-time, so one epoch is left)")
	fs.DurationVar(&b.termWait, "term-wait", 2*time.Second, "--term-wait given to this project's restarter")
	fs.DurationVar(&b.drainTime, "drain-time", 100*time.Millisecond, "fakeenvoy's --fake-drain-time")
	fs.DurationVar(&b.parentShutdownTime, "parent-shutdown-time", 150*time.Millisecond, "fakeenvoy's --fake-parent-shutdown-time")
	fs.BoolVar(&b.keep, "keep", false, "keep every sandbox directory (logs, state files) instead of removing it")
}

// defineFlags defines the flags of what to measure and where to write it.
func (o *options) defineFlags(fs *flag.FlagSet) {
	fs.Var(&o.restarters, "restarter", "a restarter command line to measure, split on spaces, the start script appended; repeatable. \"this\" is this project's restarter with --term-wait (default: this)")
	fs.BoolVar(&o.quick, "quick", false, "small run counts: the whole bench in well under a minute")
	fs.StringVar(&o.phases, "phases", "latency,shutdown,churn,storm,gate", "measurements to run (latency includes the footprint)")
	fs.StringVar(&o.jsonPath, "json", "bench-results.json", "where to write the figures as JSON (empty: nowhere)")
	fs.StringVar(&o.plotPath, "plot", "bench-latency.png", "where to write the latency plot (empty: nowhere)")
	fs.StringVar(&o.replot, "replot", "", "only redraw the plot (--plot) from a JSON file an earlier run wrote")
}

// quickSettings are --quick's run counts by flag name.
var quickSettings = map[string]func(*bench){
	"restarts":           func(b *bench) { b.restarts = 20 },
	"idle":               func(b *bench) { b.idle = time.Second },
	"footprint-restarts": func(b *bench) { b.footprintRestarts = 20 },
	"term-runs":          func(b *bench) { b.termRuns = 3 },
	"churn-restarts":     func(b *bench) { b.churnRestarts = 8 },
	"storm-signals":      func(b *bench) { b.stormSignals = 300 },
	"storm-runs":         func(b *bench) { b.stormRuns = 1 },
	"gate-runs":          func(b *bench) { b.gateRuns = 10 },
	"storm-settle":       func(b *bench) { b.stormSettle = 300 * time.Millisecond },
}

// benchmark measures the floor and every restarter, prints the figures and
// writes them where o says. Every restarter it started is stopped and
// every sandbox removed when it returns, panics or is interrupted.
func (b *bench) benchmark(o *options) error {
	removeRegions, err := fakeenvoytest.LogRegions()
	if err != nil {
		return err
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
		return err
	}
	defer os.RemoveAll(binDir)
	if err := b.buildBinaries(binDir); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	return writeReport(b.measure(self, o), o)
}

// measure runs the phases o wants: the latency of the floor (self in its
// floor role) and every restarter side by side, then each other phase one
// restarter at a time.
func (b *bench) measure(self string, o *options) *Report {
	report := &Report{Machine: describeMachine(), Settings: b.settings()}
	floor := Restarter{Label: "floor (minimal Go)", Argv: []string{self}, Env: []string{floorRoleEnv + "=floor"}}
	all := []Restarter{floor}
	for _, spec := range o.restarters {
		all = append(all, b.parseRestarter(spec))
	}
	var latencies []LatencyResult
	if o.want["latency"] {
		progress("all %d side by side: idle %v, then %d hot restarts each, taking turns", len(all), b.idle, b.restarts)
		latencies = b.runLatency(all)
	}
	for i, r := range all {
		res := Result{Label: r.Label, Command: r.Argv, Floor: r.Label == floor.Label}
		if latencies != nil {
			res.Latency = &latencies[i]
			reportError(r.Label, "latency", latencies[i].Error)
		}
		for _, p := range restarterPhases {
			if o.want[p.name] && p.measures(r, res.Floor) {
				reportError(r.Label, p.name, p.run(b, r, &res))
			}
		}
		report.Results = append(report.Results, res)
	}
	return report
}

// restarterPhase is a measurement taken of one restarter at a time.
type restarterPhase struct {
	name string
	// measures says whether the phase applies to r, the floor or not.
	measures func(r Restarter, floor bool) bool
	// run announces the phase, measures r into res and returns the
	// phase's error, if any.
	run func(b *bench, r Restarter, res *Result) string
}

// restarterPhases run in this order for each restarter: churn and storm
// skip the floor, which serves no traffic of its own; the init gate is
// this project's restarter's only.
var restarterPhases = []restarterPhase{
	{"shutdown", func(Restarter, bool) bool { return true }, (*bench).measureShutdown},
	{"churn", func(_ Restarter, floor bool) bool { return !floor }, (*bench).measureChurn},
	{"storm", func(_ Restarter, floor bool) bool { return !floor }, (*bench).measureStorm},
	{"gate", func(r Restarter, _ bool) bool { return r.This }, (*bench).measureGate},
}

func (b *bench) measureShutdown(r Restarter, res *Result) string {
	progress("%s: %d SIGTERM runs", r.Label, b.termRuns)
	s := b.runShutdown(r)
	res.Shutdown = &s
	return s.Error
}

func (b *bench) measureChurn(r Restarter, res *Result) string {
	progress("%s: %d restarts under %d clients", r.Label, b.churnRestarts, b.clients)
	c := b.runChurn(r)
	res.Churn = &c
	return c.Error
}

func (b *bench) measureStorm(r Restarter, res *Result) string {
	progress("%s: %d storms of %d SIGHUPs", r.Label, b.stormRuns, b.stormSignals)
	s := b.runStorm(r)
	res.Storm = &s
	return s.Error
}

func (b *bench) measureGate(r Restarter, res *Result) string {
	progress("%s: %d SIGHUP pairs through the init gate", r.Label, b.gateRuns)
	g := b.runGate(r)
	res.Gate = &g
	return g.Error
}

// settings are the run counts and timings the report quotes.
func (b *bench) settings() Settings {
	return Settings{
		Restarts: b.restarts, IdleSeconds: b.idle.Seconds(), FootprintRestarts: b.footprintRestarts,
		TermRuns: b.termRuns, ChurnRestarts: b.churnRestarts, Clients: b.clients,
		StormSignals: b.stormSignals, StormRuns: b.stormRuns,
		DrainTimeS: b.drainTime.Seconds(), ParentShutdownS: b.parentShutdownTime.Seconds(),
		SettleMs: ms(b.settle), TermWaitS: b.termWait.Seconds(), StormSettleMs: ms(b.stormSettle),
	}
}

// writeReport prints the machine, the figures and the targets, then writes
// the JSON and, when the latency was measured, the plot where o says.
func writeReport(report *Report, o *options) error {
	m := report.Machine
	fmt.Printf("Machine: %d CPUs, %s, Linux %s, %s, load average at start %s\n\n", m.CPUs, m.CPUModel, m.Kernel, m.GoVersion, m.LoadAvg)
	report.WriteMarkdown(os.Stdout)
	fmt.Println()
	WriteTargets(os.Stdout, report.Targets())

	if o.jsonPath != "" {
		out, _ := json.MarshalIndent(report, "", "  ")
		path := outputPath(o.jsonPath)
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			return err
		}
		progress("figures written to %s", path)
	}
	if o.plotPath != "" && o.want["latency"] {
		path := outputPath(o.plotPath)
		if err := report.plot(path); err != nil {
			return err
		}
		progress("plot written to %s", path)
	}
	return nil
}

// progress tells the operator, on stderr, what the bench is doing.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
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
