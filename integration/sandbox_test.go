// Package integration runs the restarter and fakeenvoy end to end: real
// binaries, real signals, real sockets, each scenario in a sandbox of its
// own. See README.md for the scenarios and what each proves.
package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

const (
	wait = proctest.Timeout

	// drainTime and parentShutdownTime are fakeenvoy's --fake-drain-time
	// and --fake-parent-shutdown-time in every sandbox (Envoy's own flags
	// take whole seconds), so a hot restart completes in well under a second.
	drainTime          = 100 * time.Millisecond
	parentShutdownTime = 400 * time.Millisecond

	// losslessParentShutdownTime is the parent-shutdown time of the
	// scenarios that assert no request is lost: an old epoch still holding
	// a request when its child tells it to terminate drops it (Envoy too),
	// and on a busy machine a client or an epoch can stall for most of a
	// second between connecting and answering.
	losslessParentShutdownTime = 1500 * time.Millisecond

	// Restarter log lines, as docs/OPERATIONS.md documents them.
	forkedRE   = `forked new child process with PID=(\d+)`
	abnormalRE = `Due to abnormal exit, force killing all child processes and exiting`
)

// defaultBody is the start script's body when a scenario does not need its
// own: every epoch runs fakeenvoy with the sandbox's static base id.
const defaultBody = `fakeenvoy --base-id "$BASE_ID" "$@"` + "\n"

// sandbox is one scenario's private world: fakeenvoytest's sandbox (a temp
// dir, a base id nobody else uses, domain sockets under the dir) with a
// config with an admin on a kernel-chosen port and one listener on a free
// loopback port, and a start script for the restarter.
type sandbox struct {
	*fakeenvoytest.Sandbox
	t         *testing.T
	port      int    // the listener's port, the same for every epoch
	adminPort int    // the admin's port; 0 (the kernel's choice) unless a scenario fixes it
	config    string // the bootstrap every epoch loads unless its script says otherwise
	accessLog string
	script    string
	restarter *proctest.Proc
	fakeenvoy string

	parentShutdownTime time.Duration // the epochs' --parent-shutdown-time-s
}

// newSandbox makes a sandbox whose start script has body after the preamble
// (see scriptPreamble); body "" means defaultBody.
func newSandbox(t *testing.T, body string) *sandbox {
	t.Helper()
	return newSandboxWith(t, body, parentShutdownTime)
}

// newSandboxWith is newSandbox with epochs whose --parent-shutdown-time-s is
// parentShutdown.
func newSandboxWith(t *testing.T, body string, parentShutdown time.Duration) *sandbox {
	t.Helper()
	sb := &sandbox{
		Sandbox:            fakeenvoytest.NewSandbox(t),
		t:                  t,
		fakeenvoy:          proctest.Binary(t, "fakeenvoy"),
		parentShutdownTime: parentShutdown,
	}
	sb.port = proctest.FreePort(t)
	sb.accessLog = sb.Path("access.log")
	sb.config = sb.writeConfig("envoy.yaml", sb.port)
	if body == "" {
		body = defaultBody
	}
	sb.script = sb.writeScript("start.sh", body)
	return sb
}

// addr is the listener's address.
func (sb *sandbox) addr() string { return fmt.Sprintf("127.0.0.1:%d", sb.port) }

// writeConfig writes a bootstrap: admin on 127.0.0.1 port sb.adminPort,
// listener "web" on port logging to the sandbox's access log.
func (sb *sandbox) writeConfig(name string, port int) string {
	sb.t.Helper()
	p, err := sb.WriteBootstrap(name, fakeenvoytest.Bootstrap{AdminPort: sb.adminPort, Port: port, Listener: "web", Body: "hello\n", AccessLog: sb.accessLog})
	require.NoError(sb.t, err)
	return p
}

// scriptPreamble starts every sandbox's start script. It defines what a
// body uses: FAKEENVOY, CONFIG, BASE_ID, DIR, and a function fakeenvoy that
// execs fakeenvoy with the sandbox's common flags, the epoch's state file
// and its own arguments. A body may change CONFIG before calling it.
const scriptPreamble = `set -eu
FAKEENVOY=%q
CONFIG=%q
BASE_ID=%d
DIR=%q
fakeenvoy() {
	exec "$FAKEENVOY" --config-path "$CONFIG" --restart-epoch "$RESTART_EPOCH" \
		--socket-path %q --fake-drain-time %s --fake-parent-shutdown-time %s \
		--fake-hot-restart-retry-delay 20ms --file-flush-interval-msec 100 \
		--fake-state-path "$DIR/state.$RESTART_EPOCH.json" "$@"
}
`

// writeScript writes an executable start script: the preamble, then body.
func (sb *sandbox) writeScript(name, body string) string {
	sb.t.Helper()
	pre := fmt.Sprintf(scriptPreamble, sb.fakeenvoy, sb.config, sb.BaseID, sb.Dir, sb.SocketPath(),
		drainTime, sb.parentShutdownTime)
	return proctest.Script(sb.t, sb.Dir, name, pre+body)
}

// start runs the restarter with flags on the sandbox's start script. Its
// output holds the epochs' logs too (they inherit its stdout and stderr),
// and is printed if the test fails.
func (sb *sandbox) start(flags ...string) *proctest.Proc {
	sb.t.Helper()
	sb.restarter = proctest.Start(sb.t, proctest.Options{Dir: sb.Dir}, proctest.Binary(sb.t, "restarter"), append(flags, sb.script)...)
	return sb.restarter
}

// state is fakeenvoy's --fake-state-path file.
type state struct {
	PID          int               `json:"pid"`
	Epoch        int               `json:"epoch"`
	BaseID       uint32            `json:"base_id"`
	State        string            `json:"state"`
	AdminAddress string            `json:"admin_address"`
	Listeners    map[string]string `json:"listeners"`
}

// epoch is one started epoch, as the restarter reported it.
type epoch struct {
	N   int
	PID int
}

// waitForked waits for the restarter to report forking epoch n (the
// (n+1)-th "forked" line, as epochs are never reused) and returns it.
func (sb *sandbox) waitForked(n int) epoch {
	sb.t.Helper()
	sb.restarter.WaitLine(`forking and execing new child process at epoch `+strconv.Itoa(n)+`$`, 1, wait)
	return epoch{N: n, PID: sb.restarter.WaitPID(forkedRE, n+1, wait)}
}

// epochLine is a regexp for a log line of the fakeenvoy with pid: Envoy's
// format, [time][pid][level][component] [file:line] message.
func epochLine(pid int, message string) string {
	return `^\[[^]]+\]\[` + strconv.Itoa(pid) + `\]\[[a-z]+\]\[[a-z]+\] \[[^]]+\] ` + message
}

// startedRE is fakeenvoy's own line once an epoch is fully up: LIVE, its
// parent told to drain, INITIALIZING cleared, its state file written.
const startedRE = `workers started: parent told to drain, INITIALIZING cleared$`

// waitLive waits for epoch n to be forked and fully up (its state file
// saying LIVE) and returns its state.
func (sb *sandbox) waitLive(n int) (epoch, state) {
	sb.t.Helper()
	e := sb.waitForked(n)
	sb.restarter.WaitLine(epochLine(e.PID, startedRE), 1, wait)
	st := sb.readState(n)
	require.Equal(sb.t, "LIVE", st.State, "epoch %d state", n)
	require.Equal(sb.t, e.PID, st.PID, "epoch %d pid", n)
	require.Equal(sb.t, sb.addr(), st.Listeners["web"], "epoch %d listener", n)
	return e, st
}

// readState reads epoch n's state file; fakeenvoy writes it (atomically)
// when the epoch goes LIVE, before its admin says so, and (unless the epoch
// delays its readiness) before it logs its dispatch loop starting.
func (sb *sandbox) readState(n int) state {
	sb.t.Helper()
	var st state
	b, err := os.ReadFile(sb.Path(fmt.Sprintf("state.%d.json", n)))
	require.NoError(sb.t, err)
	require.NoError(sb.t, json.Unmarshal(b, &st))
	return st
}

// lineTime returns the time of a log line in Envoy's format (the
// restarter's and fakeenvoy's): [YYYY-MM-DD HH:MM:SS.mmm]...
func lineTime(t *testing.T, line string) time.Time {
	t.Helper()
	ts, err := time.Parse("[2006-01-02 15:04:05.000]", line[:min(len(line), 25)])
	require.NoError(t, err, "time of log line %q", line)
	return ts
}

// waitReaped waits for the restarter to log how e ended and returns that
// line's outcome: "exited with code=C" or "was killed with signal=S".
func (sb *sandbox) waitReaped(e epoch) string {
	sb.t.Helper()
	m := sb.restarter.WaitLine(`PID=`+strconv.Itoa(e.PID)+` (exited with code=\d+|was killed with signal=\d+)$`, 1, wait)
	return m[1]
}

// forked returns every epoch the restarter started so far, in order.
func (sb *sandbox) forked() []epoch {
	var out []epoch
	for i, l := range sb.restarter.Lines(forkedRE) {
		pid, _ := strconv.Atoi(regexp.MustCompile(forkedRE).FindStringSubmatch(l)[1])
		out = append(out, epoch{N: i, PID: pid})
	}
	return out
}

// requireAllGone checks that no epoch the restarter started is alive, and
// that the restarter reaped each exactly once.
func (sb *sandbox) requireAllGone() {
	sb.t.Helper()
	for _, e := range sb.forked() {
		require.False(sb.t, proctest.Alive(e.PID), "epoch %d (PID %d) still alive", e.N, e.PID)
		require.Len(sb.t, sb.restarter.Lines(`PID=`+strconv.Itoa(e.PID)+` (exited with code=\d+|was killed with signal=\d+)$`), 1,
			"epoch %d (PID %d) reaped once", e.N, e.PID)
	}
}

// aliveChildren counts the restarter's children that are not zombies.
func aliveChildren(pid int) int {
	pids, zombies := proctest.Children(pid)
	return len(pids) - zombies
}

// maxChildren samples how many children of pid are alive until stop is
// closed, and returns the largest count seen through the channel it returns.
func maxChildren(pid int, stop <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	go func() {
		most := 0
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			most = max(most, aliveChildren(pid))
			select {
			case <-stop:
				out <- most
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// signal sends sig to a process the test did not start through proctest.
func signal(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, syscall.Kill(pid, sig), "signal %v to PID %d", sig, pid)
}
