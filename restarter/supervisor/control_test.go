package supervisor

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// socketpair returns two connected unix stream sockets.
func socketpair(t *testing.T) (server *net.UnixConn, client *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// newTestControl returns a control server that serves no socket: the test
// hands it connections and plays the event loop on calls.
func newTestControl(t *testing.T) (*controlServer, *[]string) {
	var warnings []string
	s := &controlServer{calls: make(chan controlCall), done: make(chan struct{}), log: func(msg string) { warnings = append(warnings, msg) }}
	return s, &warnings
}

// exchange sends request on a fresh connection to s and returns the reply.
func exchange(t *testing.T, s *controlServer, request string) controlReply {
	t.Helper()
	server, client := socketpair(t)
	go s.handle(server)
	require.NoError(t, client.SetDeadline(time.Now().Add(10*time.Second)))
	_, err := client.Write([]byte(request))
	require.NoError(t, err)
	require.NoError(t, client.CloseWrite())
	line, err := bufio.NewReader(client).ReadBytes('\n')
	require.NoError(t, err)
	var reply controlReply
	require.NoError(t, json.Unmarshal(line, &reply))
	return reply
}

func TestControlRefusesBadRequests(t *testing.T) {
	s, _ := newTestControl(t)
	tests := []struct{ request, want string }{
		{"", "malformed request: want one JSON line such as {\"command\":\"status\"}"},
		{"{\"command\":\"status\"", "malformed request: unexpected EOF"},
		{"{\"command\":\"status\",\"x\":1}\n", "malformed request: json: unknown field \"x\""},
		{"{\"command\":\"stop\"}\n", "unknown command \"stop\": want status or reload"},
		{strings.Repeat(" ", maxRequest+1), "request too large: the limit is 4096 bytes"},
	}
	for _, tt := range tests {
		require.Equal(t, controlReply{Error: tt.want}, exchange(t, s, tt.request), "request %.40q", tt.request)
	}
}

func TestControlHandsRequestsToTheLoop(t *testing.T) {
	s, _ := newTestControl(t)
	epoch := 3
	go func() {
		c := <-s.calls
		require.Equal(t, "reload", c.command)
		c.reply <- controlReply{OK: true, Epoch: &epoch}
	}()
	// The last line may come without its newline.
	require.Equal(t, controlReply{OK: true, Epoch: &epoch}, exchange(t, s, `{"command":"reload"}`))
}

func TestControlAnswersOnceTheLoopStopped(t *testing.T) {
	s, _ := newTestControl(t)
	epoch := 1
	answered := make(chan struct{})
	go func() {
		c := <-s.calls
		c.reply <- controlReply{OK: true, Epoch: &epoch} // the loop's answer, then it stops
		close(s.done)
		close(answered)
	}()
	require.Equal(t, controlReply{OK: true, Epoch: &epoch}, exchange(t, s, "{\"command\":\"reload\"}\n"), "the loop's answer wins over its exit")
	<-answered
	require.Equal(t, controlReply{Error: "the restarter is exiting"}, exchange(t, s, "{\"command\":\"status\"}\n"))
}

func TestListenControl(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	s, err := listenControl(path, func(string) {})
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	_, err = listenControl(path, func(string) {})
	require.EqualError(t, err, "control socket "+path+": in use by another process")

	go func() {
		c := <-s.calls
		st := Status{Phase: "running", Epochs: []EpochStatus{}}
		c.reply <- controlReply{OK: true, Status: &st}
	}()
	var out, errOut strings.Builder
	require.Equal(t, ExitClean, clientMain("status", []string{"--control-socket", path}, &out, &errOut))
	require.Contains(t, out.String(), `"phase": "running"`)

	s.close()
	require.NoFileExists(t, path)

	// A stale socket left by a dead restarter is replaced; anything else is
	// an error.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	ln.SetUnlinkOnClose(false)
	ln.Close()
	s, err = listenControl(path, func(string) {})
	require.NoError(t, err)
	s.close()
	require.NoError(t, os.WriteFile(path, nil, 0o644))
	_, err = listenControl(path, func(string) {})
	require.EqualError(t, err, "control socket "+path+": exists and is not a socket")
	_, err = listenControl(filepath.Join(dir, "no", "such", "dir"), func(string) {})
	require.ErrorContains(t, err, "control socket: listen unix")
}

func TestClientMain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	one, two := 1, 2
	answers := []controlReply{
		{OK: true, Epoch: &one},
		{Epoch: &two, Error: "check failed: exit status 1"},
		{Error: "shutdown in progress"},
	}
	s, err := listenControl(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.close)
	go func() {
		for _, a := range answers {
			c := <-s.calls
			c.reply <- a
		}
	}()
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"--control-socket", path}, ExitClean, "hot restart to epoch 1: ready\n", ""},
		{[]string{"--control-socket", path}, ExitReloadFailed, "", "restarter reload: hot restart to epoch 2 failed: check failed: exit status 1\n"},
		{[]string{"--control-socket", path}, ExitReloadFailed, "", "restarter reload: shutdown in progress\n"},
		{[]string{"--bogus"}, ExitUsage, "", "restarter reload: flag provided but not defined: -bogus\n"},
		{[]string{"--control-socket", path, "extra"}, ExitUsage, "", "restarter reload: unexpected argument \"extra\"\n"},
		{nil, ExitUsage, "", "restarter reload: no control socket: give --control-socket or set RESTARTER_CONTROL_SOCKET\n"},
		{[]string{"--control-socket", filepath.Join(dir, "none.sock")}, ExitUnreachable, "", "restarter reload: control socket " + filepath.Join(dir, "none.sock") + ": dial unix " + filepath.Join(dir, "none.sock") + ": connect: no such file or directory\n"},
	}
	t.Setenv("RESTARTER_CONTROL_SOCKET", "")
	for _, tt := range tests {
		var out, errOut strings.Builder
		require.Equal(t, tt.code, clientMain("reload", tt.args, &out, &errOut), "%v: %s", tt.args, errOut.String())
		require.Equal(t, tt.stdout, out.String())
		require.Equal(t, tt.stderr, errOut.String())
	}
}

func TestCallRejectsNonsense(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nonsense.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for _, answer := range []string{"not json\n", ""} {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadBytes('\n')
			c.Write([]byte(answer))
			c.Close()
		}
	}()
	_, err = call(path, "status", 10*time.Second)
	require.ErrorContains(t, err, "malformed reply")
	_, err = call(path, "status", 10*time.Second)
	require.ErrorContains(t, err, "no reply")
}

func TestMainExitCodes(t *testing.T) {
	workDir(t)
	var out, errOut strings.Builder
	require.Equal(t, ExitClean, Main([]string{"--version"}, &out, &errOut))
	require.True(t, strings.HasPrefix(out.String(), "restarter "), out.String())
	out.Reset()
	require.Equal(t, ExitClean, Main([]string{"-h"}, &out, &errOut))
	require.Contains(t, out.String(), "Exit codes:")
	require.Equal(t, ExitUsage, Main([]string{"missing.sh"}, &out, &errOut))
	require.Equal(t, "restarter: COMMAND \"missing.sh\": no such file\n", errOut.String())
	errOut.Reset()
	require.Equal(t, ExitUsage, Main([]string{"status", "--control-socket"}, &out, &errOut))
	require.Equal(t, "restarter status: flag needs an argument: -control-socket\n", errOut.String())
}

func TestVersion(t *testing.T) {
	require.NotEmpty(t, version())
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v1.2.3"
	require.Equal(t, "v1.2.3", version())
}

func TestInProgressSeesAHeldRestart(t *testing.T) {
	// Given a restarter whose reload is queued behind a held restart (no
	// restart in progress),
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := listenControl(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.close)
	go func() {
		c := <-s.calls
		c.reply <- controlReply{Status: &Status{Queued: true}}
	}()
	// when the client asks after its --timeout, then the reload is in
	// progress (exit 4), not unreachable (exit 3).
	msg, ok := inProgress(path)
	require.True(t, ok)
	require.Contains(t, msg, "queued")
}
