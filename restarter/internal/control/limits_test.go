package control

import (
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The tests below lower the test process's own open files limit: they must
// not run in parallel with anything.

// setOpenFilesLimit sets the soft RLIMIT_NOFILE of the test process to
// limit until restore is called or the test ends.
func setOpenFilesLimit(t *testing.T, limit int) (restore func()) {
	t.Helper()
	var saved unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &saved))
	lowered := saved
	lowered.Cur = uint64(limit)
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &lowered))
	var once sync.Once
	restore = func() {
		once.Do(func() { require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &saved)) })
	}
	t.Cleanup(restore)
	return restore
}

// lowestFreeFD returns the file descriptor the next file opened gets.
func lowestFreeFD(t *testing.T) int {
	t.Helper()
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer f.Close()
	return int(f.Fd())
}

// rawClient is a client socket made before the test takes the process's
// file descriptors away: connecting and sending need none.
type rawClient struct {
	t  *testing.T
	fd int
}

func newRawClient(t *testing.T) *rawClient {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	c := &rawClient{t: t, fd: fd}
	t.Cleanup(func() {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
	})
	return c
}

// connect connects to the control socket at path, where the connection
// waits to be accepted.
func (c *rawClient) connect(path string) {
	c.t.Helper()
	require.NoError(c.t, unix.Connect(c.fd, &unix.SockaddrUnix{Name: path}))
}

func (c *rawClient) send(request string) {
	c.t.Helper()
	n, err := unix.Write(c.fd, []byte(request))
	require.NoError(c.t, err)
	require.Equal(c.t, len(request), n)
}

// conn turns the client into a net.Conn (which needs a descriptor more
// for a moment: FileConn dups it).
func (c *rawClient) conn() net.Conn {
	c.t.Helper()
	f := os.NewFile(uintptr(c.fd), "client")
	c.fd = -1 // f owns it now
	conn, err := net.FileConn(f)
	f.Close()
	require.NoError(c.t, err)
	c.t.Cleanup(func() { conn.Close() })
	require.NoError(c.t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	return conn
}

// requireClosedAtOnce checks that the server closed c without a word: the
// client reads EOF, not an error reply after requestTimeout.
func requireClosedAtOnce(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(requestTimeout/2)))
	n, err := c.Read(make([]byte, 1))
	require.Zero(t, n)
	require.ErrorIs(t, err, io.EOF)
}

func TestControlKeepsServingThroughAcceptErrors(t *testing.T) {
	// Given a control server whose process has no file descriptor left
	// (its open files limit is below the descriptors it holds),
	s, path, log := listen(t)
	serveStatus(s)
	client := newRawClient(t)
	restoreLimit := setOpenFilesLimit(t, 3)

	// when a client connects and sends its request, accept fails: logged
	// once, however often it is retried while no descriptor is left
	// (several backoff periods).
	client.connect(path)
	client.send("{\"command\":\"status\"}\n")
	log.waitFor(t, "too many open files")
	time.Sleep(8 * minAcceptBackoff) // not a synchronisation: how long descriptors stay short

	// Then, once descriptors are free again, the same connection is
	// answered, and the recovery is logged once.
	restoreLimit()
	require.Equal(t, "running", readReply(t, client.conn()).Status.Phase)
	log.waitFor(t, "accepting connections again")
	lines := log.all()
	require.Len(t, lines, 2, "%q", lines)
}

func TestControlKeepsTheLastDescriptorsForHotRestarts(t *testing.T) {
	// Given a control server with fewer than fdReserve descriptors left
	// above the one a new connection takes,
	s, path, log := listen(t)
	serveStatus(s)
	client := newRawClient(t)
	restoreLimit := setOpenFilesLimit(t, lowestFreeFD(t)+1)

	// when a client connects, its connection is closed at once, and that is
	// logged,
	client.connect(path)
	log.waitFor(t, "too few file descriptors")
	restoreLimit()
	requireClosedAtOnce(t, client.conn())

	// and once descriptors are free again, clients are served.
	reply, err := Ask(path, "status", 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, "running", reply.Status.Phase)
}

func TestControlClosesNewConnectionsWhileEverySlotAnswersARequest(t *testing.T) {
	// Given every slot taken by a reload waiting for its outcome,
	s, path, log := listen(t)
	var reloads []net.Conn
	var calls []Call
	for range maxControlConns {
		c, call := askReload(t, s, path)
		reloads = append(reloads, c)
		calls = append(calls, call)
	}

	// when more clients connect, each is closed at once (logged once for
	// the crowd),
	for range 2 {
		c, err := net.Dial("unix", path)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		requireClosedAtOnce(t, c)
	}
	require.Equal(t, 1, log.count("answering requests"), "%q", log.all())

	// and every reload still gets its own outcome.
	for i, call := range calls {
		epoch := i + 1
		call.Reply <- Reply{OK: true, Epoch: &epoch}
	}
	for i, c := range reloads {
		r := readReply(t, c)
		require.True(t, r.OK)
		require.Equal(t, i+1, *r.Epoch)
	}
}
