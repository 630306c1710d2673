package hotrestart

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
)

// mutexHelperEnv names the region file a helper process locks log_lock_ in.
const mutexHelperEnv = "FAKEENVOY_TEST_MUTEX_REGION"

// TestMutexHelper is not a test: run by the tests below in a process of
// its own, it takes log_lock_, says "locked TID", and releases it when its
// stdin closes (or dies holding it, when killed).
func TestMutexHelper(t *testing.T) {
	path := os.Getenv(mutexHelperEnv)
	if path == "" {
		t.Skip("a helper process of the tests below")
	}
	m := mapRegionFile(t, path, false)
	p, err := NewProcessSharedMutex(m.LogLock())
	require.NoError(t, err)
	p.Lock()
	fmt.Printf("locked %d\n", m.LogLock().State().OwnerTID)
	_, _ = io.Copy(io.Discard, os.Stdin)
	p.Unlock()
	fmt.Println("unlocked")
}

// mapRegionFile maps a region in a plain file (created, and initialised as
// epoch 0 does, when create), as every epoch maps /dev/shm's.
func mapRegionFile(t *testing.T, path string, create bool) envoyshm.Region {
	t.Helper()
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o600)
	require.NoError(t, err)
	defer f.Close()
	if create {
		require.NoError(t, f.Truncate(envoyshm.Size))
	}
	// Left mapped, as Envoy leaves the region, for the process's life.
	mem, err := unix.Mmap(int(f.Fd()), 0, envoyshm.Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(t, err)
	r, err := envoyshm.NewRegion(mem)
	require.NoError(t, err)
	if create {
		r.Init(Version)
	}
	return r
}

// mutexHolder is a helper process holding log_lock_.
type mutexHolder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	tid   int
}

func holdLogLock(t *testing.T, region string) *mutexHolder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMutexHelper$")
	cmd.Env = append(os.Environ(), mutexHelperEnv+"="+region)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	h := &mutexHolder{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line, err := h.out.ReadString('\n')
	require.NoError(t, err)
	tid, ok := strings.CutPrefix(strings.TrimSpace(line), "locked ")
	require.True(t, ok, "helper said %q", line)
	h.tid, err = strconv.Atoi(tid)
	require.NoError(t, err)
	return h
}

// lockAsync takes p in a goroutine; the channel closes once it holds it.
func lockAsync(p *ProcessSharedMutex) <-chan struct{} {
	locked := make(chan struct{})
	go func() { p.Lock(); close(locked) }()
	return locked
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitClosed(t *testing.T, what string, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Mirrors source/server/hot_restart_impl.h ProcessSharedMutex::lock and
// unlock over initializeMutex's robust process-shared mutex: while another
// process holds log_lock_, this one sleeps on the word (FUTEX_WAITERS set,
// the holder's TID in it), and it gets the lock when the holder releases
// it; releasing it clears the word.
func TestProcessSharedMutexBlocksAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "region")
	region := mapRegionFile(t, path, true)
	log := region.LogLock()
	p, err := NewProcessSharedMutex(log)
	require.NoError(t, err)

	holder := holdLogLock(t, path)
	assert.Equal(t, envoyshm.MutexState{OwnerTID: holder.tid}, log.State())
	assert.Equal(t, uint32(holder.tid), log.Field(envoyshm.MutexOffsetOwner).Load(), "__owner, as glibc sets it")

	locked := lockAsync(p)
	waitUntil(t, "this process to sleep on the lock", func() bool { return log.State().Waiters })
	select {
	case <-locked:
		t.Fatal("took a lock another process holds")
	default:
	}

	require.NoError(t, holder.stdin.Close())
	waitClosed(t, "the lock, released by the other process", locked)
	assert.Equal(t, envoyshm.MutexState{OwnerTID: int(p.tid), Waiters: true}, log.State(),
		"a thread that slept keeps FUTEX_WAITERS, as glibc's does")
	line, err := holder.out.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "unlocked\n", line)
	require.NoError(t, holder.cmd.Wait())

	p.Unlock()
	assert.Equal(t, envoyshm.MutexState{}, log.State())
	assert.Zero(t, log.Field(envoyshm.MutexOffsetOwner).Load())
	assert.Zero(t, log.Link(envoyshm.MutexOffsetListNext).Load(), "unlinked from the robust list")
	assert.Equal(t, uint32(envoyshm.MutexKindRobustShared), log.Field(envoyshm.MutexOffsetKind).Load())
}

// Mirrors source/server/hot_restart_impl.h ProcessSharedMutex::lock on
// EOWNERDEAD: a holder killed holding the lock releases it (the kernel
// walks its robust list), and the next locker makes it consistent and
// carries on, whether it was already waiting or comes later.
func TestProcessSharedMutexTakesOverFromADeadOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "region")
	region := mapRegionFile(t, path, true)
	log := region.LogLock()
	p, err := NewProcessSharedMutex(log)
	require.NoError(t, err)

	// A waiter is woken by the holder's death.
	holder := holdLogLock(t, path)
	locked := lockAsync(p)
	waitUntil(t, "this process to sleep on the lock", func() bool { return log.State().Waiters })
	require.NoError(t, holder.cmd.Process.Signal(syscall.SIGKILL))
	waitClosed(t, "the lock, after its holder died", locked)
	assert.Equal(t, int(p.tid), log.State().OwnerTID)
	assert.False(t, log.State().OwnerDied, "taken over")
	assert.Equal(t, p.tid, log.Field(envoyshm.MutexOffsetOwner).Load(), "consistent again")
	p.Unlock()

	// Nobody waiting: the kernel marks the word, the next lock takes it.
	holder = holdLogLock(t, path)
	require.NoError(t, holder.cmd.Process.Signal(syscall.SIGKILL))
	_ = holder.cmd.Wait()
	waitUntil(t, "the kernel to mark the owner dead", func() bool { return log.State().OwnerDied })
	waitClosed(t, "the lock of a dead owner", lockAsync(p))
	assert.Equal(t, envoyshm.MutexState{OwnerTID: int(p.tid)}, log.State())
	p.Unlock()
	assert.Equal(t, envoyshm.MutexState{}, log.State())
}
