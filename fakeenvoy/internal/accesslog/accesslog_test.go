package accesslog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/internal/proctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %q, want %q", path, b, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitFlusherWaiting waits for f's flusher to have begun its n-th wait for
// something to write: only a line written while it waits stays buffered
// (one written while it flushes is taken at its next pass, in Envoy too).
func waitFlusherWaiting(t *testing.T, f *File, n int) {
	t.Helper()
	proctest.WaitFor(t, 10*time.Second, fmt.Sprintf("the flusher's wait #%d", n), func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.waits >= n
	})
}

// Mirrors source/common/access_log/access_log_manager_impl.cc
// AccessLogFileImpl::write and flushThreadFunc: the first line starts the
// flush thread, which finds it and writes it at once; later lines wait in
// the buffer until it holds more than the minimum flush size, or the
// timer, or a flush (the timer here is an hour away).
func TestLinesWaitForTheSizeOrAFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	m := NewManager(time.Hour, 100, &sync.Mutex{})
	f, err := m.Open(path)
	require.NoError(t, err)
	same, err := m.Open(path)
	require.NoError(t, err)
	assert.Same(t, f, same, "one file per path")
	assert.Equal(t, "", read(t, path), "created on open")

	f.Write("first\n")
	waitFile(t, path, "first\n")
	waitFlusherWaiting(t, f, 1)
	f.Write("second\n")
	assert.Equal(t, "first\n", read(t, path), "buffered")
	big := strings.Repeat("x", 100) + "\n"
	f.Write(big)
	waitFile(t, path, "first\nsecond\n"+big)

	waitFlusherWaiting(t, f, 2)
	f.Write("third\n")
	assert.Equal(t, "first\nsecond\n"+big, read(t, path))
	f.Flush()
	assert.Equal(t, "first\nsecond\n"+big+"third\n", read(t, path), "on disk when Flush returns")
	f.Write("last\n")
	m.Close()
	assert.Equal(t, "first\nsecond\n"+big+"third\nlast\n", read(t, path), "written at close")
}

// Mirrors the flush timer of AccessLogFileImpl (--file-flush-interval-msec).
func TestTheTimerFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	m := NewManager(20*time.Millisecond, DefaultMinFlushSize, &sync.Mutex{})
	defer m.Close()
	f, err := m.Open(path)
	require.NoError(t, err)
	f.Write("first\n")
	f.Write("second\n")
	waitFile(t, path, "first\nsecond\n")
	f.Write("third\n")
	waitFile(t, path, "first\nsecond\nthird\n")
}

// Mirrors AccessLogFileImpl::reopen and flushThreadFunc: the reopen happens
// at the flush thread's next pass, before it writes what it took, so lines
// buffered before a logrotate's move land in the new file.
func TestReopenTakesTheBufferToTheNewFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	m := NewManager(time.Hour, DefaultMinFlushSize, &sync.Mutex{})
	defer m.Close()
	f, err := m.Open(path)
	require.NoError(t, err)
	f.Write("before the move, written\n")
	waitFile(t, path, "before the move, written\n")
	waitFlusherWaiting(t, f, 1)
	f.Write("before the move, buffered\n")
	require.NoError(t, os.Rename(path, path+".1"))
	m.Reopen()
	waitFile(t, path, "before the move, buffered\n")
	f.Write("after\n")
	f.Flush()
	assert.Equal(t, "before the move, buffered\nafter\n", read(t, path))
	assert.Equal(t, "before the move, written\n", read(t, path+".1"))
}

// probeLock is a mutex that tells when someone asks for it.
type probeLock struct {
	sync.Mutex
	asked chan struct{}
}

func (l *probeLock) Lock() {
	l.asked <- struct{}{}
	l.Mutex.Lock()
}

// Mirrors AccessLogFileImpl::doWrite: every write to disk holds the lock
// the manager was given (the region's access_log_lock_, which all epochs
// share), so an epoch holding it stalls every other epoch's log files.
func TestWritesHoldTheSharedLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	lock := &probeLock{asked: make(chan struct{})}
	m := NewManager(time.Hour, DefaultMinFlushSize, lock)
	f, err := m.Open(path)
	require.NoError(t, err)

	lock.Mutex.Lock() // another epoch holds it
	f.Write("held back\n")
	<-lock.asked
	assert.Equal(t, "", read(t, path), "nothing written without the lock")
	lock.Mutex.Unlock()
	waitFile(t, path, "held back\n")
	go func() {
		for range lock.asked {
		}
	}()
	m.Close()
	close(lock.asked)
}

// An unopenable path fails as Envoy's createAccessLog does.
func TestOpenFails(t *testing.T) {
	m := NewManager(time.Hour, DefaultMinFlushSize, &sync.Mutex{})
	path := filepath.Join(t.TempDir(), "missing", "access.log")
	_, err := m.Open(path)
	assert.EqualError(t, err, "unable to open file '"+path+"': No such file or directory")
}
