package control

import (
	"bufio"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// askReload opens a connection to path, sends a reload and returns the
// connection once the event loop got the call.
func askReload(t *testing.T, s *Server, path string) (net.Conn, Call) {
	t.Helper()
	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Write([]byte("{\"command\":\"reload\"}\n"))
	require.NoError(t, err)
	select {
	case call := <-s.Calls():
		require.Equal(t, "reload", call.Command)
		return c, call
	case <-time.After(10 * time.Second):
		t.Fatal("the reload did not reach the event loop")
		return nil, Call{}
	}
}

// readReply reads the one reply line on c.
func readReply(t *testing.T, c net.Conn) Reply {
	t.Helper()
	line, err := bufio.NewReader(c).ReadBytes('\n')
	require.NoError(t, err)
	var r Reply
	require.NoError(t, json.Unmarshal(line, &r))
	return r
}

// unread returns how many bytes wait to be read on c.
func unread(t *testing.T, c net.Conn) int {
	t.Helper()
	raw, err := c.(*net.UnixConn).SyscallConn()
	require.NoError(t, err)
	var n int
	var ioctlErr error
	require.NoError(t, raw.Control(func(fd uintptr) { n, ioctlErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }))
	require.NoError(t, ioctlErr)
	return n
}

func TestControlCloseDeliversTheAnswersAlreadyGiven(t *testing.T) {
	// Given a reload waiting for its outcome,
	s, path, _ := listen(t)
	c, call := askReload(t, s, path)

	// when the event loop answers it and the restarter exits at once,
	epoch := 2
	call.Reply <- Reply{OK: true, Epoch: &epoch}
	s.Close()

	// then the answer was written before Close returned, and it is the
	// loop's answer, not "exiting".
	require.Positive(t, unread(t, c), "the answer is waiting on the client's socket")
	require.Equal(t, Reply{OK: true, Epoch: &epoch}, readReply(t, c))
}

func TestControlCloseAnswersTheReloadsLeftWithoutAnOutcome(t *testing.T) {
	// Given a reload the event loop took but never answers,
	s, path, _ := listen(t)
	c, _ := askReload(t, s, path)

	// when the restarter exits,
	s.Close()

	// then the client is told so, rather than left waiting.
	r := readReply(t, c)
	require.False(t, r.OK)
	require.Nil(t, r.Epoch)
	require.Contains(t, r.Error, "exiting")
}
