// Package options parses fakeenvoy's command line: Envoy's flags with
// Envoy's defaults and error texts, plus fakeenvoy's own --fake-... knobs.
package options

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Options is the parsed command line.
type Options struct {
	ConfigPath         string
	RestartEpoch       uint32
	BaseID             uint32
	UseDynamicBaseID   bool
	BaseIDPath         string
	DrainTime          time.Duration
	ParentShutdownTime time.Duration
	DrainStrategy      string // "gradual" or "immediate"
	DisableHotRestart  bool
	SocketPath         string
	SocketMode         uint32 // 0 for abstract socket paths, as in Envoy
	Mode               string // "serve", "validate" or "init_only"
	ServiceCluster     string
	ServiceNode        string
	ServiceZone        string
	LogPath            string
	LogLevel           string
	// Concurrency is the number of workers: --concurrency, at least 1,
	// the machine's CPUs by default.
	Concurrency uint32
	// FileFlushInterval and FileFlushMinSize are when buffered log files
	// (access logs, --log-path) are written: --file-flush-interval-msec
	// and --file-flush-min-size-kb (in bytes here).
	FileFlushInterval         time.Duration
	FileFlushMinSize          int
	SkipHotRestartOnNoParent  bool
	SkipHotRestartParentStats bool
	AdminAddressPath          string

	// fakeenvoy's own knobs; Envoy has none of these.
	//
	// FakeConfigLoadDelay is how much longer the bootstrap takes to load:
	// the time a large config takes, before the signal handlers exist.
	FakeConfigLoadDelay      time.Duration
	FakeReadyDelay           time.Duration
	FakeStatePath            string
	FakeIgnoreSIGTERM        bool
	FakeExecTimestampPath    string
	FakeHotRestartRetryDelay time.Duration
	FakeHotRestartVersion    uint64 // 0: the built-in version
	FakeReusePortZero        bool
	// FakeStatsFlushInterval, when not zero, replaces the bootstrap's
	// stats_flush_interval: the period of the stats flush, and with it of
	// a child's stats requests to its parent.
	FakeStatsFlushInterval time.Duration
	// FakeLiveGap is the time between LIVE (init manager done) and the
	// workers-started callback that drains the parent and clears
	// INITIALIZING; in Envoy it is the time the workers take to start.
	FakeLiveGap time.Duration

	// Sub-second overrides of --drain-time-s and --parent-shutdown-time-s.
	fakeDrainTime, fakeParentShutdownTime time.Duration

	socketModeText         string
	printHotRestartVersion bool
	fakeStatsFlushSet      bool
}

// ExitError ends the process before serving: Message goes to stderr as is
// (when not empty) and the process exits with Code, as Envoy's main does for
// MalformedArgvException (1) and NoServingException (0).
type ExitError struct {
	Code    int
	Message string
	// Raw says Message is printed exactly, without a trailing newline, as
	// Envoy prints --hot-restart-version.
	Raw bool
}

func (e *ExitError) Error() string { return e.Message }

func malformed(format string, args ...any) error {
	return &ExitError{Code: 1, Message: fmt.Sprintf(format, args...)}
}

func parseError(flag, detail string) error {
	return &ExitError{Code: 1, Message: fmt.Sprintf(
		"PARSE ERROR: Argument: %s\n             %s\n\nBrief USAGE: \n   fakeenvoy  [--fake-...] [-c <string>] [--restart-epoch <uint32_t>] ...\n\nFor complete USAGE and HELP type: \n   fakeenvoy --help", flag, detail)}
}

type kind int

const (
	kString kind = iota
	kBool
	kUint32
	kDuration
	kUint64
)

type flagSpec struct {
	kind kind
	set  func(o *Options, v any)
}

func flags() map[string]flagSpec {
	str := func(f func(o *Options, s string)) flagSpec {
		return flagSpec{kString, func(o *Options, v any) { f(o, v.(string)) }}
	}
	boolean := func(f func(o *Options)) flagSpec {
		return flagSpec{kBool, func(o *Options, _ any) { f(o) }}
	}
	u32 := func(f func(o *Options, n uint32)) flagSpec {
		return flagSpec{kUint32, func(o *Options, v any) { f(o, v.(uint32)) }}
	}
	// Envoy's time flags are uint32 whole seconds.
	secs := func(f func(o *Options, d time.Duration)) flagSpec {
		return flagSpec{kUint32, func(o *Options, v any) { f(o, time.Duration(v.(uint32))*time.Second) }}
	}
	dur := func(f func(o *Options, d time.Duration)) flagSpec {
		return flagSpec{kDuration, func(o *Options, v any) { f(o, v.(time.Duration)) }}
	}
	m := map[string]flagSpec{
		"--config-path":         str(func(o *Options, s string) { o.ConfigPath = s }),
		"--restart-epoch":       u32(func(o *Options, n uint32) { o.RestartEpoch = n }),
		"--base-id":             u32(func(o *Options, n uint32) { o.BaseID = n }),
		"--use-dynamic-base-id": boolean(func(o *Options) { o.UseDynamicBaseID = true }),
		"--base-id-path":        str(func(o *Options, s string) { o.BaseIDPath = s }),
		// The later of a time flag and its --fake-... stand-in wins.
		"--drain-time-s":                  secs(func(o *Options, d time.Duration) { o.DrainTime, o.fakeDrainTime = d, -1 }),
		"--parent-shutdown-time-s":        secs(func(o *Options, d time.Duration) { o.ParentShutdownTime, o.fakeParentShutdownTime = d, -1 }),
		"--drain-strategy":                str(func(o *Options, s string) { o.DrainStrategy = s }),
		"--disable-hot-restart":           boolean(func(o *Options) { o.DisableHotRestart = true }),
		"--socket-path":                   str(func(o *Options, s string) { o.SocketPath = s }),
		"--socket-mode":                   str(func(o *Options, s string) { o.socketModeText = s }),
		"--mode":                          str(func(o *Options, s string) { o.Mode = s }),
		"--service-cluster":               str(func(o *Options, s string) { o.ServiceCluster = s }),
		"--service-node":                  str(func(o *Options, s string) { o.ServiceNode = s }),
		"--service-zone":                  str(func(o *Options, s string) { o.ServiceZone = s }),
		"--log-path":                      str(func(o *Options, s string) { o.LogPath = s }),
		"--log-level":                     str(func(o *Options, s string) { o.LogLevel = s }),
		"--log-format":                    str(func(*Options, string) {}),
		"--component-log-level":           str(func(*Options, string) {}),
		"--concurrency":                   u32(func(o *Options, n uint32) { o.Concurrency = max(n, 1) }),
		"--file-flush-interval-msec":      u32(func(o *Options, n uint32) { o.FileFlushInterval = time.Duration(n) * time.Millisecond }),
		"--file-flush-min-size-kb":        u32(func(o *Options, n uint32) { o.FileFlushMinSize = int(n) * 1024 }),
		"--skip-hot-restart-on-no-parent": boolean(func(o *Options) { o.SkipHotRestartOnNoParent = true }),
		"--skip-hot-restart-parent-stats": boolean(func(o *Options) { o.SkipHotRestartParentStats = true }),
		"--admin-address-path":            str(func(o *Options, s string) { o.AdminAddressPath = s }),
		"--hot-restart-version":           boolean(func(o *Options) { o.printHotRestartVersion = true }),

		"--fake-config-load-delay":       dur(func(o *Options, d time.Duration) { o.FakeConfigLoadDelay = d }),
		"--fake-ready-delay":             dur(func(o *Options, d time.Duration) { o.FakeReadyDelay = d }),
		"--fake-state-path":              str(func(o *Options, s string) { o.FakeStatePath = s }),
		"--fake-ignore-sigterm":          boolean(func(o *Options) { o.FakeIgnoreSIGTERM = true }),
		"--fake-exec-timestamp-path":     str(func(o *Options, s string) { o.FakeExecTimestampPath = s }),
		"--fake-hot-restart-retry-delay": dur(func(o *Options, d time.Duration) { o.FakeHotRestartRetryDelay = d }),
		"--fake-reuse-port-zero":         boolean(func(o *Options) { o.FakeReusePortZero = true }),
		"--fake-hot-restart-version":     {kUint64, func(o *Options, v any) { o.FakeHotRestartVersion = v.(uint64) }},
		"--fake-stats-flush-interval":    dur(func(o *Options, d time.Duration) { o.FakeStatsFlushInterval, o.fakeStatsFlushSet = d, true }),
		"--fake-live-gap":                dur(func(o *Options, d time.Duration) { o.FakeLiveGap = d }),
		"--fake-drain-time":              dur(func(o *Options, d time.Duration) { o.fakeDrainTime = d }),
		"--fake-parent-shutdown-time":    dur(func(o *Options, d time.Duration) { o.fakeParentShutdownTime = d }),
	}
	m["-c"] = m["--config-path"]
	m["-l"] = m["--log-level"]
	return m
}

// Defaults returns the options Envoy uses when no flag is given.
func Defaults() *Options {
	return &Options{
		DrainTime:                600 * time.Second,
		ParentShutdownTime:       900 * time.Second,
		DrainStrategy:            "gradual",
		SocketPath:               "@envoy_domain_socket",
		Mode:                     "serve",
		LogLevel:                 "info",
		socketModeText:           "600",
		Concurrency:              hardwareConcurrency(),
		FileFlushInterval:        10 * time.Second,
		FileFlushMinSize:         64 * 1024,
		FakeHotRestartRetryDelay: time.Second,
		FakeLiveGap:              DefaultLiveGap,
		fakeDrainTime:            -1,
		fakeParentShutdownTime:   -1,
	}
}

// DefaultLiveGap is --fake-live-gap's default: about what Envoy's workers
// take to start after the init manager reports LIVE.
const DefaultLiveGap = 5 * time.Millisecond

// Parse parses args (without the program name). hotRestartVersion renders
// the --hot-restart-version answer; its argument is whether hot restart is
// enabled. Errors are *ExitError.
func Parse(args []string, hotRestartVersion func(enabled bool) string) (*Options, error) {
	o := Defaults()
	specs := flags()
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch arg {
		case "-h", "--help":
			return nil, &ExitError{Code: 0, Message: Usage()}
		case "--version":
			return nil, &ExitError{Code: 0, Message: "fakeenvoy  version: fakeenvoy/1.0.0/Clean/RELEASE/BoringSSL"}
		}
		name, value, hasValue := arg, "", false
		if strings.HasPrefix(arg, "--") {
			if k, v, ok := strings.Cut(arg, "="); ok {
				name, value, hasValue = k, v, true
			}
		}
		spec, ok := specs[name]
		if !ok {
			return nil, parseError(arg, "Couldn't find match for argument")
		}
		if spec.kind == kBool {
			if hasValue {
				return nil, parseError(name, "Argument does not take a value")
			}
			spec.set(o, nil)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, parseError(name, "Missing a value for this argument!")
			}
			i++
			value = args[i]
		}
		v, err := convert(spec.kind, value)
		if err != nil {
			return nil, parseError(name, fmt.Sprintf("Couldn't read argument value from string '%s'", value))
		}
		spec.set(o, v)
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.printHotRestartVersion {
		return nil, &ExitError{Code: 0, Message: hotRestartVersion(!o.DisableHotRestart), Raw: true}
	}
	return o, nil
}

func convert(k kind, s string) (any, error) {
	switch k {
	case kUint32:
		n, err := strconv.ParseUint(s, 10, 32)
		return uint32(n), err
	case kUint64:
		return strconv.ParseUint(s, 10, 64)
	case kDuration:
		d, err := time.ParseDuration(s)
		if err == nil && d < 0 {
			err = fmt.Errorf("negative duration %q", s)
		}
		return d, err
	}
	return s, nil
}

func (o *Options) check() error {
	if o.fakeDrainTime >= 0 {
		o.DrainTime = o.fakeDrainTime
	}
	if o.fakeParentShutdownTime >= 0 {
		o.ParentShutdownTime = o.fakeParentShutdownTime
	}
	if o.fakeStatsFlushSet && o.FakeStatsFlushInterval <= 0 {
		return malformed("error: --fake-stats-flush-interval must be positive")
	}
	switch o.Mode {
	case "serve", "validate", "init_only":
	default:
		return malformed("error: unknown mode '%s'", o.Mode)
	}
	if o.UseDynamicBaseID && o.RestartEpoch > 0 {
		return malformed("error: cannot use --restart-epoch=%d with --use-dynamic-base-id", o.RestartEpoch)
	}
	if o.SocketPath == "" {
		return malformed("error: --socket-path must not be empty")
	}
	if o.SocketPath[0] == '@' {
		o.SocketMode = 0
	} else {
		m, err := strconv.ParseUint(o.socketModeText, 8, 32)
		if err != nil {
			return malformed("error: invalid socket-mode '%s'", o.socketModeText)
		}
		o.SocketMode = uint32(m)
	}
	if o.DrainStrategy != "gradual" && o.DrainStrategy != "immediate" {
		// Envoy's own message prints the --mode value here (a bug); we print the strategy.
		return malformed("error: unknown drain-strategy '%s'", o.DrainStrategy)
	}
	switch o.LogLevel {
	case "trace", "debug", "info", "warning", "warn", "error", "critical", "off":
	default:
		return malformed("error: invalid log level specified '%s'", o.LogLevel)
	}
	return nil
}

// Usage is the --help text.
func Usage() string {
	return `USAGE: fakeenvoy [flags]

Envoy's flags (same names, defaults and errors as Envoy):
  -c, --config-path PATH            bootstrap YAML (fakeenvoy's subset)
  --restart-epoch N                 hot restart epoch (0)
  --base-id N                       base id for shared memory and domain sockets (0)
  --use-dynamic-base-id             pick an unused base id (epoch 0 only)
  --base-id-path PATH               write the base id in use to PATH
  --drain-time-s SECONDS            drain time, whole seconds (600)
  --parent-shutdown-time-s SECONDS  time before the parent is terminated, whole seconds (900)
  --drain-strategy gradual|immediate
  --hot-restart-version             print the hot restart version and exit
  --disable-hot-restart             no hot restart (version "disabled")
  --socket-path PATH                domain socket prefix (@envoy_domain_socket)
  --socket-mode OCTAL               mode of path sockets (600)
  --mode serve|validate|init_only
  --service-cluster, --service-node, --service-zone NAME
  --log-path PATH                   log here instead of stderr; reopened on SIGUSR1
  -l, --log-level LEVEL             accepted; fakeenvoy logs at info
  --concurrency N                   workers: a listen socket each for reuse-port listeners (CPUs)
  --file-flush-interval-msec MS     log files are written at least this often (10000)
  --file-flush-min-size-kb KB       or when this much is buffered (64)
  --skip-hot-restart-on-no-parent   start like epoch 0 when the parent is gone
  --skip-hot-restart-parent-stats   never ask the parent for stats
  --admin-address-path PATH         write the admin's ip:port to PATH once bound

fakeenvoy's own test knobs:
  --fake-config-load-delay D        the bootstrap takes this much longer to load (signals kill meanwhile)
  --fake-ready-delay DURATION       stay INITIALIZING this long before LIVE
  --fake-state-path PATH            write a JSON state file when LIVE
  --fake-ignore-sigterm             log and ignore SIGTERM
  --fake-exec-timestamp-path PATH   write CLOCK_MONOTONIC ns taken first thing in main
  --fake-hot-restart-retry-delay D  delay between refused sends to the parent (1s)
  --fake-hot-restart-version N      pretend to be built with hot restart version N
  --fake-reuse-port-zero            port-0 listeners inherit the parent's socket by name
  --fake-drain-time DURATION        --drain-time-s as a Go duration (100ms); the later wins
  --fake-parent-shutdown-time D     --parent-shutdown-time-s as a Go duration; the later wins
  --fake-stats-flush-interval D     replaces the bootstrap's stats_flush_interval (the stats flush, and the stats exchange with the parent)
  --fake-live-gap DURATION          LIVE before the parent is drained and INITIALIZING cleared (5ms)
`
}
