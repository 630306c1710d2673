package config

import (
	"flag"
	"fmt"
	"io"
)

// The usage text: --help prints the flags between its head and tail.

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

// printUsage prints --help: the head, every flag with its placeholder and
// default, the tail.
func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, usageHead)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "h" {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		if p, ok := f.Value.(interface{ placeholder() string }); ok {
			name = p.placeholder()
		}
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
