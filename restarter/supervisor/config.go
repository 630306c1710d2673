package supervisor

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/envoy-restarter/restarter/internal/httpprobe"

	"github.com/envoy-restarter/restarter/internal/repeated"
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
	// LogFormat is "text" (Envoy's log format) or "json".
	LogFormat string
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
	// InitGate is "auto" (watch Envoy's INITIALIZING flag) or "off".
	InitGate string
	// OnFailedRestart is "exit" (hot-restarter.py's policy) or "keep".
	OnFailedRestart string
}

// readiness reports whether new epochs are probed for readiness.
func (c Config) readiness() bool { return c.ReadyURL != "" || len(c.ReadyCmd) > 0 }

// UsageError is a bad command line: the restarter prints it on one line and
// exits with ExitUsage.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return &UsageError{msg: fmt.Sprintf(format, a...)}
}

// errHelp and errVersion ask for --help and --version output.
var (
	errHelp    = errors.New("help requested")
	errVersion = errors.New("version requested")
)

const usageHead = `Usage: restarter [flags] COMMAND [ARG...]
       restarter status [--control-socket PATH]
       restarter reload [--control-socket PATH] [--timeout D]

Runs COMMAND (normally a start script that execs Envoy with
--restart-epoch "$RESTART_EPOCH") as epoch 0, and hot restarts it on SIGHUP
by starting COMMAND again with the next RESTART_EPOCH. A drop-in replacement
for Envoy's restarter/hot-restarter.py.

Flags:
`

const usageTail = `
Signals:
  SIGHUP           start the next epoch (ignored once shutdown began)
  SIGUSR1          forwarded to every live child (Envoy reopens its access
                   logs); held from an epoch still initializing, sent once
                   it can take it
  SIGTERM, SIGINT, SIGQUIT
                   TERM the newest epoch, then the older ones once it is
                   reaped (or after half of --term-wait); KILL what is left
                   after --term-wait; exit; a second one KILLs at once
  SIGCHLD          a child exiting 0 drained (keep running); any other exit
                   KILLs every child and exits 1 (with --on-failed-restart
                   keep, a new epoch failing before it is ready does not);
                   no children left: exit. An epoch killed by a stop signal
                   is held 1s: if the restarter gets one too (a signal to
                   the whole group), it is a stop
  SIGUSR2, SIGPIPE ignored (logged once)

Exit codes:
  0  every child exited cleanly
  1  a child failed (during a stop too: a non-zero code or a signal other
     than a stop signal), was force killed, or could not be started; or
     the pid file, control socket or base id file could not be set up, or
     Envoy processes of an earlier run are still running
  2  usage error (bad flag, missing or non-executable COMMAND, a
     --base-id-path that holds something other than a base id, a
     --pid-file that is a symlink, not a regular file, or holds something
     other than a pid, an open files limit (RLIMIT_NOFILE) below 64)

Safe hot restarts. Recommended: --on-failed-restart keep, the init gate
(--init-gate auto, the default), --check with the start script in
--mode validate, and --control-socket. Apart from the gate, all are off by
default, which is hot-restarter.py's behaviour:
  --check runs before every hot restart and can refuse it; --ready-url or
  --ready-cmd make a restart last until the new epoch is ready, and SIGHUPs
  meanwhile are coalesced into one restart after it; --control-socket serves
  "restarter status" (JSON) and "restarter reload" (waits for the outcome:
  exit 0 ready, 1 failed, 2 usage, 3 restarter unreachable, 4 --timeout
  expired with the restart still in progress or queued). With
  NOTIFY_SOCKET set (systemd Type=notify), READY=1, RELOADING=1 and
  STOPPING=1 are sent.

COMMAND runs without a shell, with argv[0] as given and RESTART_EPOCH=N
added to the environment. A COMMAND without a slash is looked up in the
working directory first (as hot-restarter.py does), then in PATH. Under
"bazel run", a relative COMMAND and the children's working directory are
resolved against BUILD_WORKING_DIRECTORY.
`

// ParseArgs parses the command line (without the program name) and checks
// COMMAND. It returns a *UsageError for anything wrong with it.
func ParseArgs(args []string, stdout io.Writer) (Config, error) {
	cfg := Config{}
	fs := flag.NewFlagSet("restarter", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.DurationVar(&cfg.TermWait, "term-wait", 30*time.Second, "how long children get to exit after SIGTERM before they are KILLed")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "log format: text (Envoy's format) or json")
	fs.BoolVar(&cfg.Subreaper, "subreaper", false, "reap orphaned descendants (PR_SET_CHILD_SUBREAPER); implied when running as PID 1")
	var check, checkArgs, readyCmd, readyCmdArgs repeated.Strings
	fs.Var(&check, "check", "pre-restart `command`, run before every hot restart with the new RESTART_EPOCH; non-zero refuses the restart (the running epochs keep serving)")
	fs.Var(&checkArgs, "check-arg", "an `argument` for --check (repeatable, in order)")
	fs.DurationVar(&cfg.CheckTimeout, "check-timeout", 60*time.Second, "how long one run of --check may take")
	fs.StringVar(&cfg.ReadyURL, "ready-url", "", "readiness probe: a new epoch is ready when this http:// `URL` answers 200; give Envoy's admin /server_info, whose state must be LIVE and restart_epoch the new epoch's (not /ready: the admin port passes between epochs, and the old epoch answers /ready until the new one takes it over)")
	fs.Var(&readyCmd, "ready-cmd", "readiness probe: a new epoch is ready when this `command` exits 0 (run every 100ms with RESTART_EPOCH and ENVOY_PID)")
	fs.Var(&readyCmdArgs, "ready-cmd-arg", "an `argument` for --ready-cmd (repeatable, in order)")
	fs.DurationVar(&cfg.ReadyTimeout, "ready-timeout", 60*time.Second, "how long a new epoch gets to become ready before it counts as failed")
	fs.StringVar(&cfg.BaseIDPath, "base-id-path", "", "the `file` epoch 0 writes its base id to (Envoy's --base-id-path); later epochs get it as ENVOY_BASE_ID. Removed before epoch 0 if empty or a base id; anything else there is an error")
	fs.StringVar(&cfg.ControlSocket, "control-socket", "", "serve the status and reload subcommands on this unix socket `path` (mode 0600, the restarter's user and root only)")
	fs.StringVar(&cfg.InitGate, "init-gate", "auto", "auto: never start an epoch while the newest one holds Envoy's INITIALIZING flag (found in its shared memory region; inert for a child that is not Envoy), heal a flag left set by an epoch that died initializing; off: do neither")
	fs.StringVar(&cfg.OnFailedRestart, "on-failed-restart", "exit", "exit: a new epoch that fails kills every epoch and the restarter exits 1 (hot-restarter.py's policy); keep: the older epochs keep serving and the next hot restart reuses the epoch number")
	fs.StringVar(&cfg.PIDFile, "pid-file", "", "write the restarter's pid to this `file`, taken with flock (removed at exit if it is still the file written and holds that pid); a symlink, a file that is not a regular one or holds anything but a pid is refused and left alone")
	help := fs.Bool("help", false, "print this help and exit")
	fs.BoolVar(help, "h", false, "print this help and exit")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return cfg, usageErrorf("%v (see restarter --help)", err)
	}
	switch {
	case *help:
		printUsage(fs, stdout)
		return cfg, errHelp
	case *version:
		return cfg, errVersion
	case cfg.TermWait <= 0:
		return cfg, usageErrorf("invalid value %q for flag -term-wait: must be positive", cfg.TermWait)
	case cfg.InitGate != "auto" && cfg.InitGate != "off":
		return cfg, usageErrorf("invalid value %q for flag -init-gate: must be auto or off", cfg.InitGate)
	case cfg.OnFailedRestart != "exit" && cfg.OnFailedRestart != "keep":
		return cfg, usageErrorf("invalid value %q for flag -on-failed-restart: must be exit or keep", cfg.OnFailedRestart)
	case cfg.LogFormat != "text" && cfg.LogFormat != "json":
		return cfg, usageErrorf("invalid value %q for flag -log-format: must be text or json", cfg.LogFormat)
	case len(check) > 1:
		return cfg, usageErrorf("flag -check given %d times: give the command once and its arguments with -check-arg", len(check))
	case len(checkArgs) > 0 && len(check) == 0:
		return cfg, usageErrorf("flag -check-arg needs -check")
	case len(check) == 1 && check[0] == "":
		return cfg, usageErrorf(`invalid value "" for flag -check: empty command`)
	case len(readyCmd) > 1:
		return cfg, usageErrorf("flag -ready-cmd given %d times: give the command once and its arguments with -ready-cmd-arg", len(readyCmd))
	case len(readyCmdArgs) > 0 && len(readyCmd) == 0:
		return cfg, usageErrorf("flag -ready-cmd-arg needs -ready-cmd")
	case len(readyCmd) == 1 && readyCmd[0] == "":
		return cfg, usageErrorf(`invalid value "" for flag -ready-cmd: empty command`)
	case cfg.ReadyURL != "" && len(readyCmd) > 0:
		return cfg, usageErrorf("flags -ready-url and -ready-cmd exclude each other")
	case cfg.CheckTimeout <= 0:
		return cfg, usageErrorf("invalid value %q for flag -check-timeout: must be positive", cfg.CheckTimeout)
	case cfg.ReadyTimeout <= 0:
		return cfg, usageErrorf("invalid value %q for flag -ready-timeout: must be positive", cfg.ReadyTimeout)
	case fs.NArg() == 0:
		return cfg, usageErrorf("missing COMMAND: the start script to run (see restarter --help)")
	}
	if cfg.ReadyURL != "" {
		if _, err := httpprobe.ParseURL(cfg.ReadyURL); err != nil {
			return cfg, usageErrorf("invalid value %q for flag -ready-url: %v", cfg.ReadyURL, err)
		}
	}
	cfg.Command, cfg.Args = fs.Arg(0), fs.Args()[1:]
	cfg.Dir = os.Getenv("BUILD_WORKING_DIRECTORY")
	path, err := resolveCommand(cfg.Command, cfg.Dir)
	if err != nil {
		return cfg, err
	}
	cfg.Path = path
	if strings.Contains(cfg.Command, "/") {
		cfg.Path = cfg.Command
	}
	if len(check) > 0 {
		if cfg.Check, err = resolveHelper("check", check[0], checkArgs, cfg.Dir); err != nil {
			return cfg, err
		}
	}
	if len(readyCmd) > 0 {
		if cfg.ReadyCmd, err = resolveHelper("ready-cmd", readyCmd[0], readyCmdArgs, cfg.Dir); err != nil {
			return cfg, err
		}
	}
	for _, p := range []*string{&cfg.BaseIDPath, &cfg.ControlSocket, &cfg.PIDFile} {
		if *p != "" && !filepath.IsAbs(*p) && cfg.Dir != "" {
			*p = filepath.Join(cfg.Dir, *p)
		}
	}
	if cfg.ControlSocket != "" {
		if err := checkSocketPath(cfg.ControlSocket); err != nil {
			return cfg, usageErrorf("flag -control-socket: %v", err)
		}
	}
	return cfg, nil
}

// resolveHelper checks the command of --check or --ready-cmd as COMMAND is
// checked, and returns its argv with the command as an absolute path.
func resolveHelper(flagName, command string, args []string, dir string) ([]string, error) {
	path, err := resolveCommand(command, dir)
	if err != nil {
		var usage *UsageError
		if errors.As(err, &usage) {
			return nil, usageErrorf("flag -%s: %s", flagName, strings.TrimPrefix(usage.msg, "COMMAND "))
		}
		return nil, err
	}
	return append([]string{path}, args...), nil
}

func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, usageHead)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "h" {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + name
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s%s\n        %s%s\n", f.Name, name, usage, def)
	})
	fmt.Fprint(w, usageTail)
}

// resolveCommand turns COMMAND into an absolute path of an executable
// regular file, relative to dir (or the current directory when dir is "").
func resolveCommand(command, dir string) (string, error) {
	if command == "" { // it would resolve to the directory itself
		return "", usageErrorf(`COMMAND "": empty: give the start script to run`)
	}
	base := dir
	if base == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", usageErrorf("COMMAND %q: cannot read the working directory: %v", command, err)
		}
		base = wd
	}
	path := command
	if !filepath.IsAbs(path) {
		path = filepath.Join(base, path)
	}
	if !strings.Contains(command, "/") {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if found, err := exec.LookPath(command); err == nil {
				path = found
			}
		}
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", usageErrorf("COMMAND %q: no such file", command)
	case err != nil:
		return "", usageErrorf("COMMAND %q: %v", command, unwrapPathError(err))
	case info.IsDir():
		return "", usageErrorf("COMMAND %q: is a directory", command)
	case !info.Mode().IsRegular():
		return "", usageErrorf("COMMAND %q: not a regular file", command)
	}
	if err := checkExecutable(path); err != nil {
		return "", usageErrorf("COMMAND %q: not executable (%v)", command, err)
	}
	return filepath.Abs(path)
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
