package integration

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// stubbornBody runs every epoch as a process that ignores SIGTERM (set
// before the pid file says the epoch is there).
const stubbornBody = `trap '' TERM
echo $$ >"$DIR/epoch.$RESTART_EPOCH.pid"
exec sleep 300
`

// Issue 14, defect 8: SIGQUIT stops the restarter as SIGTERM does, instead
// of Go's goroutine dump and exit 2 (the usage error code).
func TestSIGQUITStopsCleanly(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	r := sb.start()
	e0, _ := sb.waitLive(0)
	r.Signal(syscall.SIGQUIT)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	r.WaitLine(`got SIGQUIT$`, 1, wait)
	r.WaitLine(`sending TERM to PID=`+strconv.Itoa(e0.PID)+`$`, 1, wait)
	require.Empty(t, r.Lines(`goroutine \d+ \[`))
	sb.requireAllGone()
}

// Issue 14, defect 8: a signal the restarter has no use for (SIGUSR2, whose
// default action would kill it and every epoch) is ignored and logged once.
func TestSIGUSR2IsIgnoredAndLoggedOnce(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	r := sb.start()
	sb.waitLive(0)
	r.Signal(syscall.SIGUSR2)
	r.WaitLine(`ignoring SIGUSR2 \(logged once\)$`, 1, wait)
	r.Signal(syscall.SIGUSR2)
	r.Signal(syscall.SIGHUP)
	sb.waitLive(1)
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	require.Len(t, r.Lines(`restarter\] (ignoring|got) SIGUSR2`), 1)
}

// Issue 14, defect 8: a second SIGTERM or SIGINT during shutdown force kills
// at once instead of waiting out --term-wait.
func TestSecondStopSignalForceKillsAtOnce(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, stubbornBody)
	r := sb.start("--term-wait", "10m")
	pid := readPID(t, sb.Path("epoch.0.pid"))
	r.Signal(syscall.SIGTERM)
	r.WaitLine(`sending TERM to PID=`+strconv.Itoa(pid)+`$`, 1, wait)
	r.Signal(syscall.SIGINT)
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	r.WaitLine(`SIGINT during shutdown: force killing all child processes$`, 1, wait)
	r.WaitLine(`force killing PID=`+strconv.Itoa(pid)+`$`, 1, wait)
	require.False(t, proctest.Alive(pid))
}

// Issue 14, defect 8: NOTIFY_SOCKET is the restarter's alone (epochs and
// helpers do not get it), and a failed hot restart that takes everything
// down sends STOPPING=1 without a READY=1 just before it.
func TestNotifySocketIsTheRestarters(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, `env >"$DIR/env.$RESTART_EPOCH"
if [ "$RESTART_EPOCH" = 1 ]; then exit 1; fi
exec sleep 300
`)
	ready := sb.writeScript("ready.sh", `env >"$DIR/ready-env.$RESTART_EPOCH"
[ "$RESTART_EPOCH" = 0 ]
`)
	sockPath := sb.Path("notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	r := proctest.Start(t, proctest.Options{Dir: sb.Dir, Env: []string{"NOTIFY_SOCKET=" + sockPath}},
		proctest.Binary(t, "restarter"), "--ready-cmd", ready, sb.script)
	sb.restarter = r

	states := notifications(t, conn, 1) // READY=1 for epoch 0
	r.Signal(syscall.SIGHUP)
	states = append(states, notifications(t, conn, 2)...)
	require.Equal(t, []string{"READY=1", "RELOADING=1", "STOPPING=1"}, states)
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))

	for _, f := range []string{"env.0", "env.1", "ready-env.0"} {
		b, err := os.ReadFile(sb.Path(f))
		require.NoError(t, err)
		require.Contains(t, string(b), "RESTART_EPOCH=")
		require.NotContains(t, string(b), "NOTIFY_SOCKET", f)
	}
}

// notifications reads n sd_notify datagrams and returns the first line of
// each (READY=1, RELOADING=1 or STOPPING=1).
func notifications(t *testing.T, conn *net.UnixConn, n int) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 4096)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(wait)))
	for range n {
		k, err := conn.Read(buf)
		require.NoError(t, err)
		first, _, _ := strings.Cut(string(buf[:k]), "\n")
		out = append(out, first)
	}
	return out
}

// Issue 14, defect 8: `restarter reload --timeout` must be positive, and
// when it expires with the restart still going, says so with exit code 4.
func TestReloadTimeout(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	sock := sb.Path("control.sock")
	check := sb.writeScript("slow-check.sh", "exec sleep 300\n")
	r := sb.start("--control-socket", sock, "--check", check)
	sb.waitLive(0)
	for _, d := range []string{"0s", "-1s"} {
		code, out := runRestarter(t, "reload", "--control-socket", sock, "--timeout", d)
		require.Equal(t, 2, code, out)
		require.Contains(t, out, `invalid value "`+d+`" for flag -timeout: must be positive`)
	}
	code, out := runRestarter(t, "reload", "--control-socket", sock, "--timeout", "500ms")
	require.Equal(t, 4, code, out)
	require.Contains(t, out, "restarter reload: no outcome within --timeout=500ms: hot restart to epoch 1 still in progress (checking)")
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
}

// Issue 14, defect 8: data after the first request line is an error, not
// silently ignored.
func TestControlRequestWithExtraData(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	sock := sb.Path("control.sock")
	r := sb.start("--control-socket", sock)
	sb.waitLive(0)
	c, err := net.Dial("unix", sock)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
	_, err = c.Write([]byte(`{"command":"status"}` + "\n" + `{"command":"reload"}` + "\n"))
	require.NoError(t, err)
	reply, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	require.JSONEq(t, `{"ok":false,"error":"malformed request: extra data after the request line (one request per connection)"}`, reply)
	require.Empty(t, r.Lines(`got SIGHUP|forking and execing new child process at epoch 1`))
}

// Issue 14, defect 8: a newline in COMMAND cannot forge a log line.
func TestNewlineInCommandCannotForgeALogLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	forged := "[2026-01-01 00:00:00.000][1][info][restarter] forged"
	script := proctest.Script(t, dir, "start\n"+forged, "exit 0\n")
	code, out := runRestarter(t, script)
	require.Equal(t, 0, code, out)
	require.NotRegexp(t, `(?m)^`+regexp.QuoteMeta(forged), out)
	require.Contains(t, out, `starting hot-restarter with target: `+dir+`/start\n`+forged+"\n")
}

// Issue 14, defect 8: a control socket path longer than a unix socket
// address holds is a usage error, for the restarter and its client.
func TestControlSocketPathTooLong(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	long := sb.Dir + "/" + strings.Repeat("c", 120) + ".sock"
	code, out := runRestarter(t, "--control-socket", long, sb.script)
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "flag -control-socket: control socket "+long+": the path is "+strconv.Itoa(len(long))+" bytes, longer than the 107 a unix socket path can hold")
	code, out = runRestarter(t, "status", "--control-socket", long)
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "longer than the 107 a unix socket path can hold")
}

// Issue 14, defect 8: a start script whose #! interpreter is missing is
// reported as such, not as a missing file.
func TestMissingInterpreterIsNamed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "start.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/nonexistent/bin/sh -e\nexit 0\n"), 0o755))
	code, out := runRestarter(t, script)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "epoch 0: cannot execute "+script+": its interpreter /nonexistent/bin/sh (on its #! line) does not exist (errno=2 ENOENT)")
}

// Issue 14, defect 10: an epoch that outlived its SIGKILLed restarter (Envoy
// replaces the restarter's SIGKILL parent-death signal with its own SIGTERM;
// this one ignores it) holds the base id; the next run says so and what to
// do, instead of a crash loop of errno=98.
func TestLeftoverOfAnEarlierRunIsReported(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, `if [ "$RESTART_EPOCH" = 0 ] && [ ! -e "$DIR/second-run" ]; then
	fakeenvoy --base-id "$BASE_ID" --fake-ignore-sigterm
fi
fakeenvoy --base-id "$BASE_ID"
`)
	// The epoch must be heard after its restarter is gone: no relay.
	r := sb.start("--log-relay", "never")
	e0, _ := sb.waitLive(0)
	killAtEnd(t, e0.PID)
	r.Signal(syscall.SIGKILL) // the restarter alone; its epoch gets PDEATHSIG
	r.Wait(wait)
	r.WaitLine(epochLine(e0.PID, `ignoring SIGTERM \(--fake-ignore-sigterm\)`), 1, wait)
	require.True(t, proctest.Alive(e0.PID), "epoch 0 outlived its restarter")
	require.NoError(t, os.WriteFile(sb.Path("second-run"), nil, 0o644))

	r2 := sb.start()
	require.Equal(t, proctest.Exit{Code: 1}, r2.Wait(wait))
	r2.WaitLine(`\]\[error\]\[restarter\] processes started by an earlier run of this restarter are still running: PID=`+strconv.Itoa(e0.PID)+
		` \(epoch 0, parent PID=\d+\); they hold its base id and ports, so a new epoch 0 would fail: stop them \(kill `+strconv.Itoa(e0.PID)+`\) and start the restarter again$`, 1, wait)
	require.Empty(t, r2.Lines(`forking`))

	// Once it is stopped, the restarter starts.
	signal(t, e0.PID, syscall.SIGKILL)
	waitGone(t, e0.PID, "the leftover epoch")
	r3 := sb.start()
	sb.waitLive(0)
	r3.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r3.Wait(wait))
}
