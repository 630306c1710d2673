package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/control"
	"github.com/envoy-restarter/restarter/restarter/internal/logging"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// Exit codes of `restarter status` and `restarter reload`.
const (
	ExitReloadFailed = 1 // the hot restart failed (check, epoch, readiness) or was abandoned
	ExitUnreachable  = 3 // the control socket could not be reached or answered nonsense
	ExitInProgress   = 4 // reload: --timeout expired while the hot restart was still in progress or queued
)

// clientMain runs `restarter status|reload|metrics [flags]` and returns its
// exit code.
func clientMain(command string, args []string, stdout, stderr io.Writer) int {
	// fail prints one line on stderr and returns code. Control characters
	// are escaped: the line may hold text from the server or a socket path,
	// and must not drive the operator's terminal or forge a line of its own.
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "restarter %s: %s\n", command, logging.EscapeControl(fmt.Sprintf(format, a...)))
		return code
	}
	fs := flag.NewFlagSet("restarter "+command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("control-socket", os.Getenv("RESTARTER_CONTROL_SOCKET"), "the restarter's control socket (default $RESTARTER_CONTROL_SOCKET)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up waiting for the answer after this long")
	asJSON := false
	if command == "status" {
		fs.BoolVar(&asJSON, "json", false, "print the whole status as JSON (with every restart record kept)")
	}
	if err := fs.Parse(args); err != nil {
		return fail(machine.ExitUsage, "%v", err)
	}
	switch {
	case fs.NArg() > 0:
		return fail(machine.ExitUsage, "unexpected argument %q", fs.Arg(0))
	case *path == "":
		return fail(machine.ExitUsage, "no control socket: give --control-socket or set RESTARTER_CONTROL_SOCKET")
	case *timeout <= 0:
		return fail(machine.ExitUsage, "invalid value %q for flag -timeout: must be positive", timeout.String())
	}
	if err := config.CheckSocketPath(*path); err != nil {
		return fail(machine.ExitUsage, "%v", err)
	}
	reply, err := control.Ask(*path, command, *timeout)
	if errors.Is(err, os.ErrDeadlineExceeded) && command == "reload" {
		if msg, ok := inProgress(*path); ok {
			return fail(ExitInProgress, "no outcome within --timeout=%s: %s", *timeout, msg)
		}
	}
	if err != nil {
		return fail(ExitUnreachable, "%v", err)
	}
	switch {
	case command == "metrics":
		fmt.Fprint(stdout, reply.Metrics) // names and numbers: no control character
		return machine.ExitClean
	case reply.Status != nil && asJSON:
		b, _ := json.MarshalIndent(reply.Status, "", "  ")
		fmt.Fprintf(stdout, "%s\n", escapeJSONControl(string(b)))
		return machine.ExitClean
	case reply.Status != nil:
		fmt.Fprint(stdout, formatStatus(*reply.Status))
		return machine.ExitClean
	case reply.OK && reply.Epoch != nil:
		fmt.Fprintf(stdout, "hot restart to epoch %d: ready%s\n", *reply.Epoch, recordNote(reply.Restart))
		return machine.ExitClean
	case reply.Epoch != nil:
		return fail(ExitReloadFailed, "hot restart to epoch %d failed: %s", *reply.Epoch, reply.Error)
	}
	return fail(ExitReloadFailed, "%s", reply.Error)
}

// escapeJSONControl escapes, in JSON text, the control characters
// encoding/json leaves raw: DEL and the C1 range. They can only be inside
// strings, where \u00XX means the same.
func escapeJSONControl(js string) string {
	raw := func(r rune) bool { return r >= 0x7f && r <= 0x9f }
	if !strings.ContainsFunc(js, raw) {
		return js
	}
	var b strings.Builder
	for _, r := range js {
		if raw(r) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// inProgress asks the restarter at path for its status and describes the
// hot restart in progress (or queued), if there is one.
func inProgress(path string) (string, bool) {
	reply, err := control.Ask(path, "status", control.Timeout)
	if err != nil || reply.Status == nil {
		return "", false
	}
	switch st := reply.Status; {
	case st.Restart != nil && st.Queued:
		return fmt.Sprintf("hot restart to epoch %d still in progress, and another queued after it", st.Restart.Epoch), true
	case st.Restart != nil:
		return fmt.Sprintf("hot restart to epoch %d still in progress (%s)", st.Restart.Epoch, st.Restart.Stage), true
	case st.Queued:
		// Held: the newest epoch is still initializing, or the one whose
		// domain socket ids the next would bind is still exiting.
		return "hot restart still queued, held until an earlier epoch finishes initializing or exiting", true
	}
	return "", false
}
