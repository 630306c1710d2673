// Package config is the restarter's command line: its flags, each checked
// once as it is parsed (typed values, positive durations, enums), the
// checks between flags, COMMAND resolved to an executable, and the usage
// text. Every problem is a *UsageError: one line, exit code 2.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"runtime/debug"
	"strings"
	"time"

	"github.com/envoy-restarter/restarter/internal/httpprobe"
	"github.com/envoy-restarter/restarter/internal/repeated"
	"github.com/envoy-restarter/restarter/restarter/internal/logging"
)

// Config is the restarter's command line, validated.
type Config struct {
	// Command is the start script as given: the child's argv[0].
	Command string
	// Path is what is executed: Command itself when it holds a slash (so a
	// script's $0 is what the operator typed; the children's working directory
	// is the one it is relative to), else Command found in the working
	// directory or PATH, as an absolute path. It was checked to be an
	// executable regular file.
	Path string
	// Args are passed on to Command after argv[0].
	Args []string
	// Dir is the children's working directory: BUILD_WORKING_DIRECTORY under
	// `bazel run`, else the restarter's own ("" means inherit).
	Dir string
	// TermWait is how long children get to exit after SIGTERM before SIGKILL.
	TermWait time.Duration
	// LogFormat is Envoy's text format or JSON.
	LogFormat logging.Format
	// Subreaper makes the restarter reap orphans as PID 1 does.
	Subreaper bool

	// Check is the pre-restart check's argv (--check, --check-arg), empty for none.
	Check []string
	// CheckTimeout bounds one run of the check.
	CheckTimeout time.Duration
	// ReadyURL is polled until it answers 200 (--ready-url).
	ReadyURL string
	// ReadyCmd is run until it exits 0 (--ready-cmd, --ready-cmd-arg).
	ReadyCmd []string
	// ReadyTimeout bounds how long a new epoch gets to become ready.
	ReadyTimeout time.Duration
	// BaseIDPath is where epoch 0 writes its base id; later epochs get it as
	// ENVOY_BASE_ID.
	BaseIDPath string
	// ControlSocket is the unix socket `restarter status` and `restarter
	// reload` talk to, "" for none.
	ControlSocket string
	// PIDFile is written with the restarter's pid, "" for none.
	PIDFile string
	// InitGate says whether Envoy's INITIALIZING flag is watched.
	InitGate InitGate
	// OnFailedRestart is what a failed hot restart does to the older epochs.
	OnFailedRestart FailedRestart
	// MemoryGuard says whether a hot restart is refused when the cgroup has
	// no room for a second Envoy.
	MemoryGuard MemoryGuard
	// MetricsFile is where the Prometheus metrics are written, "" for none.
	MetricsFile string
	// Watch are the files whose content changing starts a hot restart;
	// WatchDebounce is how long they must be quiet first.
	Watch         []string
	WatchDebounce time.Duration
	// StopDrain, when positive, drains Envoy's connections through its
	// admin at AdminURL before a stop, for at most this long.
	StopDrain time.Duration
	AdminURL  string
	// LogRelay says when the epochs' output goes through the restarter.
	LogRelay LogRelay
}

// LogRelay is --log-relay.
type LogRelay int

const (
	// LogRelayAuto relays when the restarter's stdout or stderr is a pipe, a
	// FIFO or a socket: where a reader can stall.
	LogRelayAuto LogRelay = iota
	// LogRelayAlways relays whatever the output is.
	LogRelayAlways
	// LogRelayNever lets the epochs write to the restarter's output itself.
	LogRelayNever
)

// MemoryGuard is --memory-guard.
type MemoryGuard int

const (
	// MemoryGuardAuto refuses a hot restart the cgroup has no room for; it
	// is inert without a memory limit.
	MemoryGuardAuto MemoryGuard = iota
	// MemoryGuardOff never looks.
	MemoryGuardOff
)

// Readiness reports whether new epochs are probed for readiness.
func (c Config) Readiness() bool { return c.ReadyURL != "" || len(c.ReadyCmd) > 0 }

// InitGate is --init-gate.
type InitGate int

const (
	// InitGateAuto never starts an epoch while the newest one holds Envoy's
	// INITIALIZING flag, and heals a flag left set by a dead epoch.
	InitGateAuto InitGate = iota
	// InitGateOff does neither.
	InitGateOff
)

// FailedRestart is --on-failed-restart.
type FailedRestart int

const (
	// FailedRestartExit kills every epoch and exits 1: hot-restarter.py's policy.
	FailedRestartExit FailedRestart = iota
	// FailedRestartKeep leaves the older epochs serving.
	FailedRestartKeep
)

// UsageError is a bad command line: the restarter prints it on one line and
// exits with exit code 2.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

// Usagef returns a *UsageError.
func Usagef(format string, a ...any) error {
	return &UsageError{msg: fmt.Sprintf(format, a...)}
}

// ErrHelp and ErrVersion ask for --help and --version output.
var (
	ErrHelp    = errors.New("help requested")
	ErrVersion = errors.New("version requested")
)

// MinOpenFiles is the RLIMIT_NOFILE the restarter requires. Measured with
// examples/start_fakeenvoy.sh (epochs inherit the limit) under a control
// socket, a check, a readiness probe and a hot restart: it runs with 17.
// The restarter itself holds 8 descriptors (stdio, the runtime's poller and
// cgroup files, the control socket), then up to 16 control connections,
// and keeps 8 free for forking an epoch and running its check: 32 with
// every control slot taken. 64 doubles that.
const MinOpenFiles = 64

// CheckOpenFilesLimit returns a *UsageError when limit is below MinOpenFiles.
func CheckOpenFilesLimit(limit uint64) error {
	if limit < MinOpenFiles {
		return Usagef("open files limit (RLIMIT_NOFILE) is %d; the restarter needs at least %d: raise it (ulimit -n, LimitNOFILE=)", limit, MinOpenFiles)
	}
	return nil
}

// MaxSocketPath is the longest path a unix socket address holds (sun_path
// is 108 bytes with the terminating NUL).
const MaxSocketPath = 107

// CheckSocketPath says why path cannot name a unix socket, if it cannot.
func CheckSocketPath(path string) error {
	if len(path) > MaxSocketPath {
		return fmt.Errorf("control socket %s: the path is %d bytes, longer than the %d a unix socket path can hold; choose a shorter one", path, len(path), MaxSocketPath)
	}
	return nil
}

// raw is what the flags give before the checks between them.
type raw struct {
	check, checkArgs, readyCmd, readyCmdArgs, watch repeated.Strings
	help, version                                   bool
}

// Parse parses the command line (without the program name) and checks
// COMMAND. It returns a *UsageError for anything wrong with it, ErrHelp
// (after printing the usage to stdout) or ErrVersion.
func Parse(args []string, stdout io.Writer) (Config, error) {
	cfg := Config{TermWait: 30 * time.Second, CheckTimeout: 60 * time.Second, ReadyTimeout: 60 * time.Second, WatchDebounce: time.Second}
	var r raw
	fs := flags(&cfg, &r)
	if err := fs.Parse(args); err != nil {
		if strings.HasPrefix(err.Error(), "invalid value ") {
			return cfg, Usagef("%v", err)
		}
		return cfg, Usagef("%v (see restarter --help)", err)
	}
	switch {
	case r.help:
		printUsage(fs, stdout)
		return cfg, ErrHelp
	case r.version:
		return cfg, ErrVersion
	}
	if err := r.checkBetween(cfg); err != nil {
		return cfg, err
	}
	if fs.NArg() == 0 {
		return cfg, Usagef("missing COMMAND: the start script to run (see restarter --help)")
	}
	cfg.Command, cfg.Args = fs.Arg(0), fs.Args()[1:]
	return cfg, resolve(&cfg, r)
}

// flags defines the restarter's flags over cfg and r.
func flags(cfg *Config, r *raw) *flag.FlagSet {
	fs := flag.NewFlagSet("restarter", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(positive{&cfg.TermWait}, "term-wait", "how long children get to exit after SIGTERM before they are KILLed")
	fs.Var(choice[logging.Format]{&cfg.LogFormat, []string{"text", "json"}}, "log-format", "log format: text (Envoy's format) or json")
	fs.BoolVar(&cfg.Subreaper, "subreaper", false, "reap orphaned descendants (PR_SET_CHILD_SUBREAPER); implied when running as PID 1")
	fs.Var(&r.check, "check", "pre-restart `command`, run before every hot restart with the new RESTART_EPOCH; non-zero refuses the restart (the running epochs keep serving)")
	fs.Var(&r.checkArgs, "check-arg", "an `argument` for --check (repeatable, in order)")
	fs.Var(positive{&cfg.CheckTimeout}, "check-timeout", "how long one run of --check may take")
	fs.Func("ready-url", "readiness probe: a new epoch is ready when this http:// `URL` answers 200; give Envoy's admin /server_info, whose state must be LIVE and restart_epoch the new epoch's (not /ready: the admin port passes between epochs, and the old epoch answers /ready until the new one takes it over)", func(s string) error {
		if _, err := httpprobe.ParseURL(s); err != nil {
			return err
		}
		cfg.ReadyURL = s
		return nil
	})
	fs.Var(&r.readyCmd, "ready-cmd", "readiness probe: a new epoch is ready when this `command` exits 0 (run every 100ms with RESTART_EPOCH and ENVOY_PID)")
	fs.Var(&r.readyCmdArgs, "ready-cmd-arg", "an `argument` for --ready-cmd (repeatable, in order)")
	fs.Var(positive{&cfg.ReadyTimeout}, "ready-timeout", "how long a new epoch gets to become ready before it counts as failed")
	fs.StringVar(&cfg.BaseIDPath, "base-id-path", "", "the `file` epoch 0 writes its base id to (Envoy's --base-id-path); later epochs get it as ENVOY_BASE_ID. Removed before epoch 0 if empty or a base id; anything else there is an error")
	fs.StringVar(&cfg.ControlSocket, "control-socket", "", "serve the status and reload subcommands on this unix socket `path` (mode 0600, the restarter's user and root only)")
	fs.Var(choice[InitGate]{&cfg.InitGate, []string{"auto", "off"}}, "init-gate", "auto: never start an epoch while the newest one holds Envoy's INITIALIZING flag (found in its shared memory region; inert for a child that is not Envoy), heal a flag left set by an epoch that died initializing, and hold SIGUSR1 from an epoch until it is initialized; off: do none of this")
	fs.Var(choice[FailedRestart]{&cfg.OnFailedRestart, []string{"exit", "keep"}}, "on-failed-restart", "exit: a new epoch that fails kills every epoch and the restarter exits 1 (hot-restarter.py's policy); keep: the older epochs keep serving and the next hot restart reuses the epoch number")
	fs.StringVar(&cfg.PIDFile, "pid-file", "", "write the restarter's pid to this `file`, taken with flock (removed at exit if it is still the file written and holds that pid); a symlink, a file that is not a regular one or holds anything but a pid is refused and left alone")
	fs.Var(choice[MemoryGuard]{&cfg.MemoryGuard, []string{"auto", "off"}}, "memory-guard", "auto: refuse a hot restart (as a failed one: the running epochs keep serving) when the restarter's cgroup has less memory left than the newest epoch's resident memory, the room a second Envoy needs; inert without a memory limit; off: never look")
	fs.StringVar(&cfg.MetricsFile, "metrics-file", "", "write Prometheus metrics (text format) to this `file`, replaced atomically on every change (for node_exporter's textfile collector)")
	fs.Var(&r.watch, "watch", "hot restart when the content of this `file` changes (repeatable; through its directory: in-place writes, editors' rename-over saves, Kubernetes ConfigMap symlink swaps); a touch or an identical rewrite does nothing")
	fs.Var(positive{&cfg.WatchDebounce}, "watch-debounce", "how long watched files must be quiet before their content is compared")
	fs.DurationVar(&cfg.StopDrain, "stop-drain", 0, "on the first stop signal, fail Envoy's health check and drain its listeners through --admin-url, and wait at most this `duration` for its connections to close before the stop proper (a second stop signal skips the rest); 0: stop at once")
	fs.Func("admin-url", "Envoy's admin, such as http://127.0.0.1:9901 (for --stop-drain)", func(s string) error {
		if _, err := httpprobe.ParseURL(s); err != nil {
			return err
		}
		cfg.AdminURL = s
		return nil
	})
	fs.Var(choice[LogRelay]{&cfg.LogRelay, []string{"auto", "always", "never"}}, "log-relay", "auto: when the restarter's stdout or stderr is a pipe, a FIFO or a socket, the epochs write into pipes the restarter copies to its own, whole lines through a bounded buffer, so a stalled log reader costs counted lines, never a blocked Envoy, and a failed hot restart quotes Envoy's last error line; always: relay anyway; never: the epochs write to the restarter's output themselves")
	fs.BoolVar(&r.help, "help", false, "print this help and exit")
	fs.BoolVar(&r.help, "h", false, "print this help and exit")
	fs.BoolVar(&r.version, "version", false, "print the version and exit")
	return fs
}

// checkBetween checks what one flag says about another.
func (r raw) checkBetween(cfg Config) error {
	for _, h := range []struct {
		name      string
		cmd, args repeated.Strings
	}{{"check", r.check, r.checkArgs}, {"ready-cmd", r.readyCmd, r.readyCmdArgs}} {
		switch {
		case len(h.cmd) > 1:
			return Usagef("flag -%s given %d times: give the command once and its arguments with -%s-arg", h.name, len(h.cmd), h.name)
		case len(h.args) > 0 && len(h.cmd) == 0:
			return Usagef("flag -%s-arg needs -%s", h.name, h.name)
		case len(h.cmd) == 1 && h.cmd[0] == "":
			return Usagef(`invalid value "" for flag -%s: empty command`, h.name)
		}
	}
	switch {
	case cfg.ReadyURL != "" && len(r.readyCmd) > 0:
		return Usagef("flags -ready-url and -ready-cmd exclude each other")
	case cfg.StopDrain < 0:
		return Usagef("invalid value %q for flag -stop-drain: must not be negative", cfg.StopDrain)
	case cfg.StopDrain > 0 && cfg.AdminURL == "":
		return Usagef("flag -stop-drain needs -admin-url: the drain goes through Envoy's admin")
	}
	return nil
}

// UnwrapPathError returns the error inside a *fs.PathError, whose path the
// caller's message names already.
func UnwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Build is the restarter's version; release builds set it with
// -ldflags "-X github.com/envoy-restarter/restarter/restarter/internal/config.Build=v1.2.3".
var Build = ""

// Version returns Build, else the module version or VCS revision the binary
// was built from.
func Version() string {
	if Build != "" {
		return Build
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" && info.Main.Version != "(devel)" {
			return info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return "devel-" + s.Value
			}
		}
	}
	return "devel"
}
