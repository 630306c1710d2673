package control

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// serverLog collects what a server logs, for a test to wait on.
type serverLog struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // has room for one: a line was added
}

func newServerLog() *serverLog { return &serverLog{changed: make(chan struct{}, 1)} }

func (l *serverLog) add(msg string) {
	l.mu.Lock()
	l.lines = append(l.lines, msg)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// all returns the lines logged so far.
func (l *serverLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// count returns how many lines logged so far contain substr.
func (l *serverLog) count(substr string) int {
	n := 0
	for _, line := range l.all() {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// waitFor waits (10 s at most) until a line containing substr is logged.
func (l *serverLog) waitFor(t *testing.T, substr string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for l.count(substr) == 0 {
		select {
		case <-l.changed:
		case <-deadline:
			t.Fatalf("no log line with %q; logged: %q", substr, l.all())
		}
	}
}

// listen starts a control server on a socket in a fresh temporary
// directory; it is closed when the test ends, if the test did not close it.
func listen(t *testing.T) (*Server, string, *serverLog) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.sock")
	log := newServerLog()
	s, err := Listen(path, log.add)
	require.NoError(t, err)
	t.Cleanup(func() {
		select {
		case <-s.Done(): // the test closed it
		default:
			s.Close()
		}
	})
	return s, path, log
}

func TestListenServesASocketOnlyItsUserMayOpen(t *testing.T) {
	// Given a control server,
	s, path, _ := listen(t)
	serveStatus(s)

	// then its socket has mode 0600 and answers requests,
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket|0o600, fi.Mode()&(os.ModeType|os.ModePerm))
	reply, err := Ask(path, "status", 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, "running", reply.Status.Phase)

	// and once closed, the socket is gone.
	s.Close()
	require.NoFileExists(t, path)
}

func TestListenRefusesASocketInUse(t *testing.T) {
	// Given a restarter serving its control socket,
	s, path, _ := listen(t)
	serveStatus(s)

	// when another one starts on the same path, it is refused,
	_, err := Listen(path, func(string) {})
	require.ErrorContains(t, err, "in use by another process")

	// and the first one's socket is left alone: it still answers.
	reply, err := Ask(path, "status", 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, "running", reply.Status.Phase)
}

func TestListenReplacesAStaleSocket(t *testing.T) {
	// Given the socket a dead restarter left behind (nothing listens on it),
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	ln.SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())
	require.FileExists(t, path)

	// when a restarter starts on that path,
	s, err := Listen(path, func(string) {})
	require.NoError(t, err)
	t.Cleanup(s.Close)

	// then it serves there.
	serveStatus(s)
	reply, err := Ask(path, "status", 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, "running", reply.Status.Phase)
}

func TestListenLeavesAFileThatIsNotASocketAlone(t *testing.T) {
	// Given a regular file where the socket should go,
	path := filepath.Join(t.TempDir(), "control.sock")
	require.NoError(t, os.WriteFile(path, []byte("precious"), 0o644))

	// when a restarter starts on that path, it is refused,
	_, err := Listen(path, func(string) {})
	require.ErrorContains(t, err, "not a socket")

	// and the file is untouched.
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "precious", string(b))
}

func TestListenFailsWhereNoSocketCanBeCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "control.sock")
	_, err := Listen(path, func(string) {})
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "control socket")
}
