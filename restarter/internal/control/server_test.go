package control

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
func newTestControl(t *testing.T) (*Server, *[]string) {
	var warnings []string
	s := &Server{calls: make(chan Call), done: make(chan struct{}), log: func(msg string) { warnings = append(warnings, msg) }}
	return s, &warnings
}

// exchange sends request on a fresh connection to s and returns the reply.
func exchange(t *testing.T, s *Server, request string) Reply {
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
	var reply Reply
	require.NoError(t, json.Unmarshal(line, &reply))
	return reply
}

func TestControlRefusesBadRequests(t *testing.T) {
	s, _ := newTestControl(t)
	tests := []struct{ request, want string }{
		{"", "malformed request: want one JSON line such as {\"command\":\"status\"}"},
		{"{\"command\":\"status\"", "malformed request: unexpected EOF"},
		{"{\"command\":\"status\",\"x\":1}\n", "malformed request: json: unknown field \"x\""},
		{"{\"command\":\"stop\"}\n", "unknown command \"stop\": want status, reload or metrics"},
		{strings.Repeat(" ", maxRequest+1), "request too large: the limit is 4096 bytes"},
		{"{\"command\":\"status\"}\n{\"command\":\"reload\"}\n", "malformed request: extra data after the request line (one request per connection)"},
	}
	for _, tt := range tests {
		require.Equal(t, Reply{Error: tt.want}, exchange(t, s, tt.request), "request %.40q", tt.request)
	}
}

func TestControlHandsRequestsToTheLoop(t *testing.T) {
	s, _ := newTestControl(t)
	epoch := 3
	go func() {
		c := <-s.calls
		require.Equal(t, "reload", c.Command)
		c.Reply <- Reply{OK: true, Epoch: &epoch}
	}()
	// The last line may come without its newline.
	require.Equal(t, Reply{OK: true, Epoch: &epoch}, exchange(t, s, `{"command":"reload"}`))
}

func TestControlAnswersOnceTheLoopStopped(t *testing.T) {
	s, _ := newTestControl(t)
	epoch := 1
	answered := make(chan struct{})
	go func() {
		c := <-s.calls
		c.Reply <- Reply{OK: true, Epoch: &epoch} // the loop's answer, then it stops
		close(s.done)
		close(answered)
	}()
	require.Equal(t, Reply{OK: true, Epoch: &epoch}, exchange(t, s, "{\"command\":\"reload\"}\n"), "the loop's answer wins over its exit")
	<-answered
	require.Equal(t, Reply{Error: "the restarter is exiting"}, exchange(t, s, "{\"command\":\"status\"}\n"))
}

// Issue 19, defect 2: a connection that sends no request is closed after
// requestTimeout, with an error reply.
func TestControlClosesIdleConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := Listen(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	require.NoError(t, c.SetReadDeadline(start.Add(10*time.Second)))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	require.NoError(t, err)
	require.Less(t, time.Since(start), requestTimeout+2*time.Second)
	var reply Reply
	require.NoError(t, json.Unmarshal(line, &reply))
	require.Equal(t, Reply{Error: "no request within 2s: want one JSON line such as {\"command\":\"status\"}"}, reply)
}

// An idle connection does not hold the restarter's exit up for
// closeFlushWait: it has sent nothing, so there is nothing to answer.
func TestControlCloseDoesNotWaitForIdleConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := Listen(path, func(string) {})
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
	s.Close()
	require.Less(t, time.Since(start), closeFlushWait)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
}

// serveStatus plays the event loop for s: it answers every status call
// until s stops.
func serveStatus(s *Server) {
	go func() {
		for {
			select {
			case c := <-s.Calls():
				c.Reply <- Reply{OK: true, Status: &status.Status{Phase: "running", Epochs: []status.EpochStatus{}}}
			case <-s.Done():
				return
			}
		}
	}()
}

// Issue 19, defect 2: idle connections cannot lock the operator out: with
// every slot taken by a connection that sent nothing, `restarter status`
// is still answered at once, in the slot of the oldest idle connection.
func TestControlEvictsTheOldestIdleConnection(t *testing.T) {
	s, path, log := listen(t)
	serveStatus(s)

	// Given more idle connections than the server serves at once,
	var idle []net.Conn
	for range maxControlConns + 4 {
		c, err := net.Dial("unix", path)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		idle = append(idle, c)
	}

	// when the operator asks for the status,
	start := time.Now()
	reply, err := Ask(path, "status", 10*time.Second)

	// then the answer comes at once, not when idle connections time out,
	require.NoError(t, err)
	require.Equal(t, "running", reply.Status.Phase)
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
	// The evictions are logged once for the crowd, not once each.
	require.Equal(t, 1, log.count("closing the oldest idle one"), "%q", log.all())
}

// Issue 19, defect 2: a connection that is answering a request is never
// closed to make room; only idle ones are.
func TestControlNeverEvictsARequestInProgress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := Listen(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.Close)

	// Given a reload waiting for its outcome (the oldest connection),
	reload, err := net.Dial("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { reload.Close() })
	require.NoError(t, reload.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = reload.Write([]byte("{\"command\":\"reload\"}\n"))
	require.NoError(t, err)
	var waiting Call
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
	serveStatus(s)
	reply, err := Ask(path, "status", 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, "running", reply.Status.Phase)
	// and the reload still gets its outcome.
	epoch := 1
	waiting.Reply <- Reply{OK: true, Epoch: &epoch}
	line, err := bufio.NewReader(reload).ReadBytes('\n')
	require.NoError(t, err)
	require.JSONEq(t, `{"ok":true,"epoch":1}`, string(line))
}
