package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/hotrestart"
	"github.com/envoy-restarter/restarter/internal/envoyshm"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// stalledPipe is a pipe a process writes its output to and nobody reads
// until the test says so: a stalled log reader.
type stalledPipe struct {
	t        *testing.T
	read     int // non-blocking, this test's own
	fill     int // non-blocking write end of this test's own, to fill it up
	received strings.Builder
}

// newStalledPipe returns the pipe and its write end for the process (a
// blocking one, as a process's stderr is).
func newStalledPipe(t *testing.T) (*stalledPipe, *os.File) {
	t.Helper()
	var fds [2]int
	require.NoError(t, unix.Pipe2(fds[:], unix.O_CLOEXEC))
	require.NoError(t, unix.SetNonblock(fds[0], true))
	// A second open of the pipe, non-blocking without making the
	// process's end so.
	fill, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fds[0]), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	p := &stalledPipe{t: t, read: fds[0], fill: fill}
	t.Cleanup(func() { unix.Close(p.read); unix.Close(p.fill) })
	return p, os.NewFile(uintptr(fds[1]), "stderr")
}

// fillUp writes filler until the pipe takes no single byte more: the next
// write of the process's blocks.
func (p *stalledPipe) fillUp() {
	p.t.Helper()
	for _, chunk := range []int{4096, 1} {
		filler := []byte(strings.Repeat(".", chunk))
		for {
			_, err := unix.Write(p.fill, filler)
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			require.NoError(p.t, err)
		}
	}
}

// drainUntil reads what the pipe holds, as a reader catching up does,
// until the output contains text.
func (p *stalledPipe) drainUntil(text string) {
	p.t.Helper()
	buf := make([]byte, 64<<10)
	proctest.WaitFor(p.t, wait, "the output to hold "+strconv.Quote(text), func() bool {
		for {
			n, err := unix.Read(p.read, buf)
			if n > 0 {
				p.received.Write(buf[:n])
				continue
			}
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				require.NoError(p.t, err)
			}
			return strings.Contains(p.received.String(), text)
		}
	})
}

// logLock reads the region's log_lock_ as another process would, mapping
// the region read-only.
func (sb *sandbox) logLock() envoyshm.MutexState {
	sb.t.Helper()
	f, err := os.Open(envoyshm.Path(sb.BaseID))
	require.NoError(sb.t, err)
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, envoyshm.Size, unix.PROT_READ, unix.MAP_SHARED)
	require.NoError(sb.t, err)
	defer unix.Munmap(mem)
	r, err := envoyshm.NewRegion(mem)
	require.NoError(sb.t, err)
	return r.LogLock().State()
}

// heldBy says whether the log lock is held by a thread of pid.
func (sb *sandbox) heldBy(pid int) func() bool {
	return func() bool {
		tid := sb.logLock().OwnerTID
		_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, tid))
		return tid != 0 && err == nil
	}
}

// Mirrors source/common/common/logger.cc StderrSinkDelegate::log (each log
// line written to stderr holding the lock Logger::Context gave the sink,
// the hot restarter's logLock(): source/exe/main_common.cc) and
// source/server/hot_restart_impl.{h,cc} (log_lock_ lives in the shared
// region, a PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST mutex behind
// ProcessSharedMutex): every epoch's log lines wait on one lock, so an
// epoch blocked writing to a stalled stderr stalls them all.
func TestStalledStderrBlocksEveryEpoch(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	base := strconv.FormatUint(uint64(sb.BaseID), 10)

	// Given epoch 0 whose stderr is a pipe nobody reads,
	pipe, stderr := newStalledPipe(t)
	e0 := proctest.Start(t, proctest.Options{Dir: sb.Dir, Stdout: stderr}, sb.fakeenvoy,
		"--restart-epoch", "0", "--base-id", base, "-c", cfg, "--fake-state-path", sb.Path("s0.json"),
		"--fake-parent-shutdown-time", "1h", "--fake-drain-time", "1h")
	stderr.Close()
	readState(t, sb.Path("s0.json"), 0)
	proctest.WaitFor(t, wait, "epoch 0 fully up", func() bool { return !sb.initializingFlag() })
	pipe.drainUntil(startedLine)
	assert.Equal(t, envoyshm.MutexState{}, sb.logLock(), "free between lines")

	// when the pipe is full and epoch 1 starts,
	pipe.fillUp()
	e1 := sb.start(1, "-c", cfg, "--fake-parent-shutdown-time", "1h", "--admin-address-path", sb.Path("admin1"))
	// then epoch 0, logging "shutting down admin due to child startup",
	// blocks in the write holding the log lock, before it answers, so
	// epoch 1 waits in ShutdownAdmin:
	proctest.WaitFor(t, wait, "epoch 0 holding the log lock", sb.heldBy(e0.PID()))
	e1.WaitLine("initializing epoch 1", 1, wait)
	assert.NotContains(t, e1.Output(), "admin address", "epoch 1 got no answer")
	assert.NoFileExists(t, sb.Path("admin1"))
	assert.True(t, e1.Alive())

	// when the reader drains the pipe, then both go on.
	pipe.drainUntil("shutting down admin due to child startup")
	e1.WaitLine(startedLine, 1, wait)
	pipe.drainUntil("closing and draining listeners")

	// Given the pipe full again and epoch 0 blocked writing a line,
	pipe.fillUp()
	e0.Signal(syscall.SIGHUP)
	proctest.WaitFor(t, wait, "epoch 0 holding the log lock", sb.heldBy(e0.PID()))
	// when epoch 1 logs, then it waits for the lock,
	e1.Signal(syscall.SIGHUP)
	proctest.WaitFor(t, wait, "epoch 1 waiting for the log lock", func() bool { return sb.logLock().Waiters })
	assert.NotContains(t, e1.Output(), "caught and eating SIGHUP")
	// and when epoch 0 dies holding it, the lock is epoch 1's (Envoy's
	// robust mutex: EOWNERDEAD, made consistent), and its line goes out.
	e0.Signal(syscall.SIGKILL)
	e0.Wait(wait)
	e1.WaitLine("caught and eating SIGHUP", 1, wait)
	proctest.WaitFor(t, wait, "the lock released", func() bool { return sb.logLock().OwnerTID == 0 })
	assert.False(t, sb.logLock().OwnerDied)
}

// Mirrors source/common/access_log/access_log_manager_impl.cc
// AccessLogFileImpl::doWrite (every write to disk holds the lock the
// server's access log manager was given) and source/exe/main_common.cc
// (that lock is the hot restarter's accessLogLock(), access_log_lock_ in
// the shared region): while another process holds access_log_lock_, an
// epoch's access log lines wait in memory; they are written once it is
// released.
func TestAccessLogWritesWaitForTheSharedLock(t *testing.T) {
	sb := newSandbox(t)
	e0 := sb.start(0, "-c", sb.config("c.yaml", 0), "--fake-state-path", sb.Path("s0.json"))
	st := readState(t, sb.Path("s0.json"), 0)
	e0.WaitLine(startedLine, 1, wait)

	// Given another process holding access_log_lock_ (this test, as an
	// epoch of the same base id would),
	lock := sb.holdAccessLogLock()
	// when epoch 0 answers a request, the first line of its access log,
	code, _ := get(t, "http://"+st.Listeners["web"]+"/")
	require.Equal(t, 200, code)
	// then its flush waits for the lock, the line unwritten,
	proctest.WaitFor(t, wait, "epoch 0 waiting for access_log_lock_", lock.waiters)
	assert.False(t, fileHas(sb.Path("access.log"), `"GET / HTTP/1.1" 200`)())
	// and once the lock is released, the line is written.
	lock.Unlock()
	proctest.WaitFor(t, wait, "the access log line", fileHas(sb.Path("access.log"), `"GET / HTTP/1.1" 200`))
}

// heldLock is a shared region's lock that the test holds, as an epoch of
// the same base id would.
type heldLock struct {
	*hotrestart.ProcessSharedMutex
	m envoyshm.Mutex
}

// waiters says whether a process waits for the lock.
func (l heldLock) waiters() bool { return l.m.State().Waiters }

// holdAccessLogLock takes access_log_lock_ of the sandbox's region (which
// an epoch has made) and returns it held: an epoch's flusher that has
// taken lines to write waits for it, while new lines stay in its buffer.
func (sb *sandbox) holdAccessLogLock() heldLock {
	sb.t.Helper()
	f, err := os.OpenFile(envoyshm.Path(sb.BaseID), os.O_RDWR, 0)
	require.NoError(sb.t, err)
	mem, err := unix.Mmap(int(f.Fd()), 0, envoyshm.Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	f.Close()
	require.NoError(sb.t, err) // left mapped: the lock's owner thread lives as long as the test binary
	region, err := envoyshm.NewRegion(mem)
	require.NoError(sb.t, err)
	lock, err := hotrestart.NewProcessSharedMutex(region.AccessLogLock())
	require.NoError(sb.t, err)
	lock.Lock()
	return heldLock{ProcessSharedMutex: lock, m: region.AccessLogLock()}
}
