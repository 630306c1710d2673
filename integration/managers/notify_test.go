package managers

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// unitCommand returns the command line of key (ExecStart, ExecReload) in a
// systemd unit, continuation lines joined, split on blanks (the example
// units quote nothing), with the install's paths.
func unitCommand(t *testing.T, in *install, unit, key string) []string {
	b, err := os.ReadFile(filepath.Join(in.examples, unit))
	require.NoError(t, err)
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, key+"="); ok {
			return strings.Fields(in.repl.Replace(rest))
		}
	}
	t.Fatalf("%s: no %s=", unit, key)
	return nil
}

// notifySocket stands in for systemd's notification socket: each datagram
// is one message, its lines KEY=VALUE.
type notifySocket struct {
	t        *testing.T
	path     string
	messages chan map[string]string
}

func listenNotify(t *testing.T, dir string) *notifySocket {
	n := &notifySocket{t: t, path: filepath.Join(dir, "notify.sock"), messages: make(chan map[string]string, 64)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.messages)
				return
			}
			fields := map[string]string{}
			for _, line := range strings.Split(string(buf[:k]), "\n") {
				key, value, _ := strings.Cut(line, "=")
				fields[key] = value
			}
			n.messages <- fields
		}
	}()
	return n
}

// next is the next message, with MAINPID checked and MONOTONIC_USEC (a
// clock reading) checked and removed.
func (n *notifySocket) next(mainPID int) map[string]string {
	n.t.Helper()
	select {
	case m := <-n.messages:
		require.Equal(n.t, strconv.Itoa(mainPID), m["MAINPID"], "MAINPID in %v", m)
		delete(m, "MAINPID")
		if usec, ok := m["MONOTONIC_USEC"]; ok {
			v, err := strconv.ParseInt(usec, 10, 64)
			require.NoError(n.t, err)
			require.Positive(n.t, v)
			delete(m, "MONOTONIC_USEC")
		}
		return m
	case <-time.After(wait):
		n.t.Fatal("no sd_notify message")
		return nil
	}
}

// none checks that no message came.
func (n *notifySocket) none() {
	n.t.Helper()
	select {
	case m := <-n.messages:
		n.t.Fatalf("unexpected sd_notify message %v", m)
	default:
	}
}

// TestSystemdUnitNotifySequence runs examples/envoy.service's ExecStart= and
// ExecReload= as systemd would for a Type=notify service, with a datagram
// socket standing in for systemd's NOTIFY_SOCKET, and pins the exact
// sequence of messages systemd gets: start, reload, refused reload, failed
// restart kept by --on-failed-restart keep, stop.
func TestSystemdUnitNotifySequence(t *testing.T) {
	t.Parallel()
	in := newInstall(t)
	notify := listenNotify(t, in.dir)
	start := unitCommand(t, in, "envoy.service", "ExecStart")
	reload := unitCommand(t, in, "envoy.service", "ExecReload")
	env := []string{"NOTIFY_SOCKET=" + notify.path, "ENVOY_CONFIG=" + in.path("etc/envoy.yaml")}
	restarter := proctest.Start(t, proctest.Options{Dir: in.dir, Env: env}, start[0], start[1:]...)
	mainPID := restarter.PID()
	epochPID := func(n int) string {
		return strconv.Itoa(restarter.WaitPID(`forked new child process with PID=(\d+)`, n+1, wait))
	}

	// systemctl start: READY=1 once epoch 0 is live (not at fork);
	require.Equal(t, map[string]string{"READY": "1", "STATUS": "epoch 0 live (PID=" + epochPID(0) + ")"}, notify.next(mainPID))
	require.Equal(t, 0, in.servingEpoch())

	// systemctl reload: ExecReload exits 0 once epoch 1 is live, after
	// RELOADING=1 then READY=1;
	out, err := runCommand(reload)
	require.NoError(t, err, "%s", out)
	require.Equal(t, map[string]string{"RELOADING": "1", "STATUS": "hot restart to epoch 1"}, notify.next(mainPID))
	require.Equal(t, map[string]string{"READY": "1", "STATUS": "epoch 1 live (PID=" + epochPID(1) + ")"}, notify.next(mainPID))
	require.Equal(t, 1, in.servingEpoch())

	// a reload of a bad config: ExecReload exits 1 (systemctl reload fails),
	// systemd sees RELOADING=1 then READY=1 with the reason, epoch 1 serves;
	in.writeConfig(false)
	out, err = runCommand(reload)
	require.Error(t, err, "%s", out)
	require.Equal(t, map[string]string{"RELOADING": "1", "STATUS": "hot restart to epoch 2"}, notify.next(mainPID))
	require.Equal(t, map[string]string{
		"READY":  "1",
		"STATUS": "hot restart to epoch 2 failed: check failed: " + in.path("etc/start_envoy.sh") + ": exit status 1",
	}, notify.next(mainPID))
	require.Equal(t, 1, in.servingEpoch())

	// a reload whose new epoch fails after it was forked (its access log
	// cannot be opened: the check passes, Envoy fails late): under the
	// unit's --on-failed-restart keep, ExecReload exits 1, systemd sees
	// RELOADING=1 then READY=1 with the reason, and epoch 1 still serves;
	in.writeConfigLogging(in.path("no-such-dir/access.log"), "")
	out, err = runCommand(reload)
	require.Error(t, err, "%s", out)
	require.Equal(t, map[string]string{"RELOADING": "1", "STATUS": "hot restart to epoch 2"}, notify.next(mainPID))
	// (the reason quotes Envoy's own last error line, through the log relay:
	// systemd's output is journald's stream, a socket)
	failed := notify.next(mainPID)
	require.Equal(t, "1", failed["READY"])
	require.Equal(t, "hot restart to epoch 2 failed: epoch 2 exited with code=1 before it was ready: "+
		strconv.Quote("error initializing configuration '"+in.path("etc/envoy.yaml")+"': cannot open access log "+
			in.path("no-such-dir/access.log")+": unable to open file '"+in.path("no-such-dir/access.log")+"': No such file or directory"),
		failed["STATUS"])
	require.Equal(t, 1, in.servingEpoch())
	in.writeConfig(true)

	// systemctl stop (KillSignal=SIGTERM, KillMode=mixed): STOPPING=1, exit 0.
	notify.none()
	restarter.Signal(syscall.SIGTERM)
	require.Equal(t, map[string]string{"STOPPING": "1", "STATUS": "shutting down"}, notify.next(mainPID))
	require.Equal(t, proctest.Exit{Code: 0}, restarter.Wait(wait))
	notify.none()
	in.requireNothingRunning()
}
