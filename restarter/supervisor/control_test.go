package supervisor

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
	"github.com/envoy-restarter/restarter/restarter/status"

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
	admitted, _ := s.admit(server)
	require.True(t, admitted)
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
		st := status.Status{Phase: "running", Epochs: []status.EpochStatus{}}
		c.reply <- controlReply{OK: true, Status: &st}
	}()
	var out, errOut strings.Builder
	require.Equal(t, machine.ExitClean, clientMain("status", []string{"--control-socket", path}, &out, &errOut))
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
		{[]string{"--control-socket", path}, machine.ExitClean, "hot restart to epoch 1: ready\n", ""},
		{[]string{"--control-socket", path}, ExitReloadFailed, "", "restarter reload: hot restart to epoch 2 failed: check failed: exit status 1\n"},
		{[]string{"--control-socket", path}, ExitReloadFailed, "", "restarter reload: shutdown in progress\n"},
		{[]string{"--bogus"}, machine.ExitUsage, "", "restarter reload: flag provided but not defined: -bogus\n"},
		{[]string{"--control-socket", path, "extra"}, machine.ExitUsage, "", "restarter reload: unexpected argument \"extra\"\n"},
		{nil, machine.ExitUsage, "", "restarter reload: no control socket: give --control-socket or set RESTARTER_CONTROL_SOCKET\n"},
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
	t.Setenv("BUILD_WORKING_DIRECTORY", t.TempDir())
	var out, errOut strings.Builder
	require.Equal(t, machine.ExitClean, Main([]string{"--version"}, &out, &errOut))
	require.True(t, strings.HasPrefix(out.String(), "restarter "), out.String())
	out.Reset()
	require.Equal(t, machine.ExitClean, Main([]string{"-h"}, &out, &errOut))
	require.Contains(t, out.String(), "Exit codes:")
	require.Equal(t, machine.ExitUsage, Main([]string{"missing.sh"}, &out, &errOut))
	require.Equal(t, "restarter: COMMAND \"missing.sh\": no such file\n", errOut.String())
	errOut.Reset()
	require.Equal(t, machine.ExitUsage, Main([]string{"status", "--control-socket"}, &out, &errOut))
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
		c.reply <- controlReply{Status: &status.Status{Queued: true}}
	}()
	// when the client asks after its --timeout, then the reload is in
	// progress (exit 4), not unreachable (exit 3).
	msg, ok := inProgress(path)
	require.True(t, ok)
	require.Contains(t, msg, "queued")
}

// serveStatus plays the event loop for s: it answers every status call
// until s stops.
func serveStatus(s *controlServer, reason string) {
	go func() {
		for {
			select {
			case c := <-s.calls:
				st := status.Status{Phase: "running", Epochs: []status.EpochStatus{}, LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: reason}}
				c.reply <- controlReply{OK: true, Status: &st}
			case <-s.done:
				return
			}
		}
	}()
}

// Issue 19, defect 2: idle connections cannot lock the operator out: with
// every slot taken by a connection that sent nothing, `restarter status`
// is still answered at once, in the slot of the oldest idle connection.
func TestControlEvictsTheOldestIdleConnection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := listenControl(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.close)
	serveStatus(s, "")

	// Given more idle connections than the server serves at once,
	var idle []net.Conn
	for range maxControlConns + 4 {
		c, err := net.Dial("unix", path)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		idle = append(idle, c)
	}

	// when the operator asks for the status,
	var out, errOut strings.Builder
	start := time.Now()
	code := clientMain("status", []string{"--control-socket", path, "--timeout", "10s"}, &out, &errOut)

	// then the answer comes at once, not when idle connections time out,
	require.Equal(t, machine.ExitClean, code, errOut.String())
	require.Contains(t, out.String(), `"phase": "running"`)
	require.Less(t, time.Since(start), requestTimeout)
	// and it was the oldest idle connections that were closed: the newest is
	// still served.
	require.NoError(t, idle[0].SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = idle[0].Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the oldest idle connection is closed")
	newest := idle[len(idle)-1]
	require.NoError(t, newest.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = newest.Write([]byte("{\"command\":\"status\"}\n"))
	require.NoError(t, err)
	line, err := bufio.NewReader(newest).ReadBytes('\n')
	require.NoError(t, err)
	require.Contains(t, string(line), `"phase":"running"`)
}

// Issue 19, defect 2: a connection that is answering a request is never
// closed to make room; only idle ones are.
func TestControlNeverEvictsARequestInProgress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := listenControl(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.close)

	// Given a reload waiting for its outcome (the oldest connection),
	reload, err := net.Dial("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { reload.Close() })
	require.NoError(t, reload.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = reload.Write([]byte("{\"command\":\"reload\"}\n"))
	require.NoError(t, err)
	var waiting controlCall
	select {
	case waiting = <-s.calls:
	case <-time.After(10 * time.Second):
		t.Fatal("the reload did not reach the event loop")
	}
	// and the other slots taken by idle connections,
	for range maxControlConns {
		c, err := net.Dial("unix", path)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
	}
	// when a status is asked for, it is answered,
	serveStatus(s, "")
	var out, errOut strings.Builder
	require.Equal(t, machine.ExitClean, clientMain("status", []string{"--control-socket", path, "--timeout", "10s"}, &out, &errOut), errOut.String())
	// and the reload still gets its outcome.
	epoch := 1
	waiting.reply <- controlReply{OK: true, Epoch: &epoch}
	line, err := bufio.NewReader(reload).ReadBytes('\n')
	require.NoError(t, err)
	require.JSONEq(t, `{"ok":true,"epoch":1}`, string(line))
}

// Issue 19, defect 2: a connection that sends no request is closed after
// requestTimeout, with an error reply.
func TestControlClosesIdleConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := listenControl(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.close)
	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	require.NoError(t, c.SetReadDeadline(start.Add(10*time.Second)))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	require.NoError(t, err)
	require.Less(t, time.Since(start), requestTimeout+2*time.Second)
	var reply controlReply
	require.NoError(t, json.Unmarshal(line, &reply))
	require.Equal(t, controlReply{Error: "no request within 2s: want one JSON line such as {\"command\":\"status\"}"}, reply)
}

// Issue 19, defect 2: what the client prints from the server (or from a
// socket path) cannot move the terminal's cursor or forge a line: control
// characters are escaped.
func TestClientEscapesControlCharacters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	s, err := listenControl(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.close)
	epoch := 2
	go func() {
		c := <-s.calls
		c.reply <- controlReply{Error: "refused\x1b[2J\nrestarter reload: hot restart to epoch 2: ready\r"}
		c = <-s.calls
		c.reply <- controlReply{Epoch: &epoch, Error: "check failed:\n\x1b]0;owned\x07"}
	}()
	t.Setenv("RESTARTER_CONTROL_SOCKET", "")
	var out, errOut strings.Builder
	require.Equal(t, ExitReloadFailed, clientMain("reload", []string{"--control-socket", path}, &out, &errOut))
	require.Equal(t, `restarter reload: refused\x1b[2J\nrestarter reload: hot restart to epoch 2: ready\r`+"\n", errOut.String())
	errOut.Reset()
	require.Equal(t, ExitReloadFailed, clientMain("reload", []string{"--control-socket", path}, &out, &errOut))
	require.Equal(t, `restarter reload: hot restart to epoch 2 failed: check failed:\n\x1b]0;owned\a`+"\n", errOut.String())

	// A socket path with a control character in it, in the client's own error.
	bad := filepath.Join(dir, "bad\x1b[31m.sock")
	errOut.Reset()
	require.Equal(t, ExitUnreachable, clientMain("status", []string{"--control-socket", bad}, &out, &errOut))
	require.NotContains(t, errOut.String(), "\x1b")
	require.Contains(t, errOut.String(), `bad\x1b[31m.sock`)
	require.Equal(t, 1, strings.Count(errOut.String(), "\n"))
}

// Issue 19, defect 2: the status JSON printed carries no raw control
// character either, not even those encoding/json leaves as they are (DEL
// and the C1 range, which some terminals obey).
func TestClientStatusEscapesControlCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := listenControl(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.close)
	serveStatus(s, "epoch 1 said: \x1b[31mred\x7f\u009b2J")
	var out, errOut strings.Builder
	require.Equal(t, machine.ExitClean, clientMain("status", []string{"--control-socket", path}, &out, &errOut), errOut.String())
	require.Contains(t, out.String(), `"reason": "epoch 1 said: \u001b[31mred\u007f\u009b2J"`)
	var st status.Status
	require.NoError(t, json.Unmarshal([]byte(out.String()), &st), "still JSON")
	require.Equal(t, "epoch 1 said: \x1b[31mred\x7f\u009b2J", st.LastRestart.Reason)
}

// An idle connection does not hold the restarter's exit up for
// closeFlushWait: it has sent nothing, so there is nothing to answer.
func TestControlCloseDoesNotWaitForIdleConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := listenControl(path, func(string) {})
	require.NoError(t, err)
	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	// Once the server has admitted it,
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.idle) == 1
	}, 10*time.Second, time.Millisecond)
	start := time.Now()
	s.close()
	require.Less(t, time.Since(start), closeFlushWait)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
}
