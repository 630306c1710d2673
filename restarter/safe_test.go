package main_test

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/cli"
	"github.com/envoy-restarter/restarter/restarter/status"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// client runs `restarter status|reload` against sock and returns its exit
// code, stdout and stderr.
func client(t *testing.T, command, sock string, flags ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(proctest.Binary(t, "restarter"), append([]string{command, "--control-socket", sock, "--timeout", wait.String()}, flags...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, stdout.String(), stderr.String()
}

func getStatus(t *testing.T, sock string) status.Status {
	t.Helper()
	code, out, errOut := client(t, "status", sock, "--json")
	require.Equal(t, 0, code, errOut)
	var s status.Status
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	return s
}

// ignoreTimes compares statuses without their clock readings.
var ignoreTimes = cmpopts.IgnoreFields(status.EpochStatus{}, "Started")
var ignoreAt = cmpopts.IgnoreFields(status.RestartStatus{}, "At")
var ignoreRecordTimes = cmpopts.IgnoreFields(status.Restart{}, "RequestedAt", "ForkedAt", "InitializedAt", "ReadyAt", "FinishedAt", "DurationSeconds")

func TestControlSocketStatusAndReload(t *testing.T) {
	// Given a restarter with a control socket and a check that fails while a
	// file named "bad" exists,
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")
	check := proctest.Script(t, dir, "check.sh", `echo "checking epoch $RESTART_EPOCH"; [ ! -e bad ] || { echo "config is bad"; exit 1; }`+"\n")
	r := proctest.Start(t, proctest.Options{Dir: dir}, proctest.Binary(t, "restarter"),
		"--control-socket", sock, "--check", check, proctest.Script(t, dir, "start.sh", childScript))
	r.WaitLine(`child epoch=0 `, 1, wait)

	// then the socket is private to the restarter's user,
	fi, err := os.Stat(sock)
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket|0o600, fi.Mode()&(os.ModeSocket|os.ModePerm))

	// a reload starts epoch 1 and succeeds,
	code, out, errOut := client(t, "reload", sock)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `^hot restart to epoch 1: ready \(restart #1, \d+\.\d\ds\)\n$`, out)
	r.WaitLine(`child epoch=1 `, 1, wait)

	// a reload refused by the check exits 1 with the reason, and starts nothing,
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad"), nil, 0o644))
	code, _, errOut = client(t, "reload", sock)
	require.Equal(t, cli.ExitReloadFailed, code)
	require.Equal(t, "restarter reload: hot restart to epoch 2 failed: check failed: "+check+": exit status 1\n", errOut)
	r.WaitLine(`check refused hot restart to epoch 2: `, 1, wait)
	r.WaitLine(`\[error\]\[restarter\] check output: config is bad$`, 1, wait)

	// and status tells all of it.
	pids := forkedPIDs(r)
	want := status.Status{
		Phase: "running",
		Epochs: []status.EpochStatus{
			{Epoch: 0, PID: pids[0], State: "draining"},
			{Epoch: 1, PID: pids[1], State: "live"},
		},
		LastRestart: &status.RestartStatus{Epoch: 2, Result: "failed", Reason: "check failed: " + check + ": exit status 1"},
		Counters: status.Counters{Reloads: 2, Restarts: 2, RestartsFailed: 1, ChecksFailed: 1,
			Outcomes: map[string]int{"ok": 1, "refused": 1}},
		Restarts: []status.Restart{
			{ID: 1, Epoch: 1, Trigger: "reload", Outcome: "ok"},
			{ID: 2, Epoch: 2, Trigger: "reload", Outcome: "refused", Reason: "check failed: " + check + ": exit status 1"},
		},
	}
	require.Empty(t, cmp.Diff(want, getStatus(t, sock), ignoreTimes, ignoreAt, ignoreRecordTimes))

	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	_, err = os.Stat(sock)
	require.ErrorIs(t, err, os.ErrNotExist, "control socket removed at exit")
	code, _, errOut = client(t, "status", sock)
	require.Equal(t, cli.ExitUnreachable, code)
	require.Contains(t, errOut, "no such file or directory")
}

func TestControlSocketRefusesBadRequests(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")
	r := proctest.Start(t, proctest.Options{Dir: dir}, proctest.Binary(t, "restarter"),
		"--control-socket", sock, proctest.Script(t, dir, "start.sh", childScript))
	r.WaitLine(`child epoch=0 `, 1, wait)

	ask := func(request string) string {
		t.Helper()
		conn, err := net.DialTimeout("unix", sock, wait)
		require.NoError(t, err)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(wait))
		_, err = conn.Write([]byte(request))
		require.NoError(t, err)
		conn.(*net.UnixConn).CloseWrite()
		reply := make([]byte, 1024)
		n, _ := conn.Read(reply)
		return string(reply[:n])
	}
	for name, tc := range map[string]struct{ request, reply string }{
		"not JSON":        {"hello\n", `{"ok":false,"error":"malformed request: invalid character 'h' looking for beginning of value"}` + "\n"},
		"unknown field":   {`{"command":"status","x":1}` + "\n", `{"ok":false,"error":"malformed request: json: unknown field \"x\""}` + "\n"},
		"unknown command": {`{"command":"restart"}` + "\n", `{"ok":false,"error":"unknown command \"restart\": want status, reload or metrics"}` + "\n"},
		"empty":           {"", `{"ok":false,"error":"malformed request: want one JSON line such as {\"command\":\"status\"}"}` + "\n"},
		"oversized":       {`{"command":"` + strings.Repeat("x", 10000) + `"}` + "\n", `{"ok":false,"error":"request too large: the limit is 4096 bytes"}` + "\n"},
	} {
		t.Run(name, func(t *testing.T) { require.Equal(t, tc.reply, ask(tc.request)) })
	}

	// Another user is refused: by the socket's mode, and by the peer check
	// when the mode is loosened.
	// A copy of the client that user 65534 can reach (Bazel's runfiles, like
	// t.TempDir's parents, are private to root).
	client := filepath.Join(dir, "restarter")
	b, err := os.ReadFile(proctest.Binary(t, "restarter"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(client, b, 0o755))
	nobody := func() (int, string) {
		cmd := exec.Command(client, "status", "--control-socket", sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755)) // t.TempDir's are private
	require.NoError(t, os.Chmod(dir, 0o755))
	code, out := nobody()
	require.Equal(t, cli.ExitUnreachable, code)
	require.Contains(t, out, "permission denied")
	require.NoError(t, os.Chmod(sock, 0o666))
	code, out = nobody()
	require.Equal(t, cli.ExitReloadFailed, code)
	require.Equal(t, "restarter status: permission denied: only the restarter's user and root may use the control socket\n", out)
	r.WaitLine(`control socket: refused a connection from uid 65534`, 1, wait)

	// The restarter is unharmed.
	require.Equal(t, "running", getStatus(t, sock).Phase)
}

func TestControlSocketInUse(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")
	script := proctest.Script(t, dir, "start.sh", childScript)
	r := proctest.Start(t, proctest.Options{Dir: dir}, proctest.Binary(t, "restarter"), "--control-socket", sock, script)
	r.WaitLine(`child epoch=0 `, 1, wait)

	second := proctest.Start(t, proctest.Options{Dir: dir}, proctest.Binary(t, "restarter"), "--control-socket", sock, script)
	require.Equal(t, proctest.Exit{Code: 1}, second.Wait(wait))
	second.WaitLine(`control socket `+sock+`: in use by another process$`, 1, wait)
	require.Empty(t, second.Lines(`forking`), "no epoch started")
	require.Equal(t, "running", getStatus(t, sock).Phase, "the first restarter's socket survives")
}

func TestReadinessTimeoutFailsTheReload(t *testing.T) {
	// Given epochs that become ready when a file named ready.N exists,
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")
	ready := proctest.Script(t, dir, "ready.sh", `[ -e "ready.$RESTART_EPOCH" ] && [ -n "$ENVOY_PID" ]`+"\n")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ready.0"), nil, 0o644))
	r := proctest.Start(t, proctest.Options{Dir: dir}, proctest.Binary(t, "restarter"),
		"--control-socket", sock, "--ready-cmd", ready, "--ready-timeout", "500ms",
		proctest.Script(t, dir, "start.sh", childScript))
	r.WaitLine(`epoch 0 is ready`, 1, wait)

	// when epoch 1 never gets ready,
	code, _, errOut := client(t, "reload", sock)

	// then the reload fails with the reason, and the restarter shuts everything down.
	require.Equal(t, cli.ExitReloadFailed, code)
	require.Equal(t, "restarter reload: hot restart to epoch 1 failed: epoch 1 not ready within --ready-timeout=500ms: "+ready+": exit status 1\n", errOut)
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	r.WaitLine(`epoch 1 not ready within --ready-timeout=500ms: .*ready.sh: exit status 1; killing it`, 1, wait)
	r.WaitLine(`Due to abnormal exit, force killing all child processes and exiting`, 1, wait)
}

func TestSDNotify(t *testing.T) {
	// Given a NOTIFY_SOCKET, as systemd gives a Type=notify service,
	dir := t.TempDir()
	notifySock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifySock, Net: "unixgram"})
	require.NoError(t, err)
	defer conn.Close()
	messages := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(messages)
				return
			}
			messages <- string(buf[:n])
		}
	}()
	next := func() map[string]string {
		t.Helper()
		select {
		case m := <-messages:
			fields := map[string]string{}
			for _, line := range strings.Split(m, "\n") {
				k, v, _ := strings.Cut(line, "=")
				fields[k] = v
			}
			return fields
		case <-time.After(wait):
			t.Fatal("no sd_notify message")
			return nil
		}
	}
	r := proctest.Start(t, proctest.Options{Dir: dir, Env: []string{"NOTIFY_SOCKET=" + notifySock}}, proctest.Binary(t, "restarter"),
		proctest.Script(t, dir, "start.sh", childScript))
	pid := strconv.Itoa(r.PID())

	// then epoch 0's start is READY=1,
	pid0 := r.WaitPID(forkedRE, 1, wait)
	require.Equal(t, map[string]string{"READY": "1", "STATUS": "epoch 0 live (PID=" + strconv.Itoa(pid0) + ")", "MAINPID": pid}, next())

	// a hot restart is RELOADING=1 with the monotonic clock, then READY=1,
	r.WaitLine(`child epoch=0 `, 1, wait)
	r.Signal(syscall.SIGHUP)
	reloading := next()
	usec, err := strconv.ParseInt(reloading["MONOTONIC_USEC"], 10, 64)
	require.NoError(t, err)
	require.Positive(t, usec)
	delete(reloading, "MONOTONIC_USEC")
	require.Equal(t, map[string]string{"RELOADING": "1", "STATUS": "hot restart to epoch 1", "MAINPID": pid}, reloading)
	pid1 := r.WaitPID(forkedRE, 2, wait)
	require.Equal(t, map[string]string{"READY": "1", "STATUS": "epoch 1 live (PID=" + strconv.Itoa(pid1) + ")", "MAINPID": pid}, next())

	// and SIGTERM is STOPPING=1.
	r.WaitLine(`child epoch=1 `, 1, wait)
	r.Signal(syscall.SIGTERM)
	require.Equal(t, map[string]string{"STOPPING": "1", "STATUS": "shutting down", "MAINPID": pid}, next())
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
}

func TestSubreaperReapsOrphans(t *testing.T) {
	// Given a start script whose helper leaves an orphan behind, which exits 3,
	dir := t.TempDir()
	release := filepath.Join(dir, "release")
	r := proctest.Start(t, proctest.Options{Dir: dir}, proctest.Binary(t, "restarter"), "--subreaper", "--init-gate", "off",
		proctest.Script(t, dir, "start.sh", `sh -c 'sh -c "echo orphan=\$\$; while [ ! -e `+release+` ]; do sleep 0.01; done; exit 3" &'
`+childScript))
	orphan := r.WaitPID(`^orphan=(\d+)`, 1, wait)
	r.WaitLine(`child epoch=0 `, 1, wait)

	// then the orphan is the restarter's child,
	proctest.WaitFor(t, wait, "the orphan re-parented to the restarter", func() bool {
		pids, _ := proctest.Children(r.PID())
		return slices.Contains(pids, orphan)
	})

	// and when it exits it is reaped, and not mistaken for an epoch.
	require.NoError(t, os.WriteFile(release, nil, 0o644))
	proctest.WaitFor(t, wait, "the orphan reaped", func() bool {
		pids, _ := proctest.Children(r.PID())
		return !slices.Contains(pids, orphan)
	})
	r.Signal(syscall.SIGUSR1) // the restarter still works: USR1 goes to epoch 0 only
	r.WaitLine(`epoch 0 pid=\d+ got USR1`, 1, wait)
	require.Empty(t, r.Lines(`Due to abnormal exit`))
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
}

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "restarter.pid")
	r := proctest.Start(t, proctest.Options{Dir: dir}, proctest.Binary(t, "restarter"), "--pid-file", pidFile,
		proctest.Script(t, dir, "start.sh", childScript))
	r.WaitLine(`child epoch=0 `, 1, wait)
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(r.PID())+"\n", string(b))

	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	_, err = os.Stat(pidFile)
	require.ErrorIs(t, err, os.ErrNotExist)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), ".restarter.pid"), "temp file %s left behind", e.Name())
	}
}

func TestBaseIDHandOff(t *testing.T) {
	// Given a start script that, like Envoy with --use-dynamic-base-id, writes
	// a base id at epoch 0 and reports ENVOY_BASE_ID at later epochs,
	// (A free id, as a port is picked: a region of that id left on the host
	// must not be this scenario's.)
	dir := t.TempDir()
	id := strconv.FormatUint(uint64(fakeenvoytest.StaticBaseID()), 10)
	idFile := filepath.Join(dir, "base-id")
	require.NoError(t, os.WriteFile(idFile, []byte("999"), 0o644)) // stale, from an earlier run
	r := proctest.Start(t, proctest.Options{Dir: dir, Env: []string{"ENVOY_BASE_ID=5", "TEST_BASE_ID=" + id}}, proctest.Binary(t, "restarter"), "--base-id-path", idFile,
		proctest.Script(t, dir, "start.sh", `if [ "$RESTART_EPOCH" = 0 ]; then
  [ -e "$ENVOY_BASE_ID_PATH" ] && { echo "stale base id file"; exit 1; }
  printf %s "$TEST_BASE_ID" >"$ENVOY_BASE_ID_PATH"
fi
echo "epoch $RESTART_EPOCH base id=${ENVOY_BASE_ID:-none}"
`+childScript))
	r.WaitLine(`child epoch=0 `, 1, wait)

	// when it is hot restarted five times,
	for epoch := 1; epoch <= 5; epoch++ {
		r.Signal(syscall.SIGHUP)
		r.WaitLine(`child epoch=`+strconv.Itoa(epoch)+` `, 1, wait)
	}

	// then epoch 0 had none (not even the inherited one) and every later epoch had epoch 0's.
	want := []string{"epoch 0 base id=none"}
	for epoch := 1; epoch <= 5; epoch++ {
		want = append(want, "epoch "+strconv.Itoa(epoch)+" base id="+id)
	}
	require.Empty(t, cmp.Diff(want, r.Lines(`^epoch \d+ base id=`)))
}
