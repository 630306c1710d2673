package osproc

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
)

// envoyRegionFile creates, in /dev/shm, a region laid out as Envoy lays it
// out (size_, version_, two pthread mutexes, flags_), with the given size_,
// version_ and file length, under a free base id (no region, no sockets of
// that id). It returns the path and the base id; the file is removed when
// the test ends.
func envoyRegionFile(t *testing.T, size, version uint64, length int) (string, string) {
	t.Helper()
	id := fakeenvoytest.StaticBaseID()
	path := envoyshm.Path(id)
	writeRegion(t, path, size, version, length)
	t.Cleanup(func() { os.Remove(path) })
	return path, fmt.Sprint(id)
}

// writeRegion creates a region file at path, which must not exist.
func writeRegion(t *testing.T, path string, size, version uint64, length int) {
	t.Helper()
	b := make([]byte, length)
	if length >= 16 {
		binary.LittleEndian.PutUint64(b[0:], size)
		binary.LittleEndian.PutUint64(b[8:], version)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// refOf is the regionRef of the file at path now, as an epoch mapping it
// shows it in its maps.
func refOf(t *testing.T, path string) regionRef {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Stat(path, &st))
	return regionRef{path: path, major: unix.Major(st.Dev), minor: unix.Minor(st.Dev), ino: st.Ino}
}

// mapForTest maps path in this process, as an Envoy epoch does: the test
// process then plays the epoch, in its own /proc/self/maps (and is not
// taken for a child of the restarter's that has not exec'd yet).
func mapForTest(t *testing.T, path string) []byte {
	t.Helper()
	old := selfExe
	selfExe = "/not/the/test/binary"
	t.Cleanup(func() { selfExe = old })
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, envoyshm.Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Munmap(mem) })
	return mem
}

func TestMapRegionChecksEnvoysLayout(t *testing.T) {
	path, _ := envoyRegionFile(t, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	r, err := mapRegion(refOf(t, path))
	require.NoError(t, err)
	require.False(t, r.Initializing())

	// The flag lives at flags_' offset: 16 + 2 * sizeof(pthread_mutex_t).
	mem := mapForTest(t, path)
	binary.LittleEndian.PutUint64(mem[16+2*envoyshm.PthreadMutexSize:], 1|1<<7)
	require.True(t, r.Initializing())
	r.ClearInitializing()
	require.Equal(t, uint64(1<<7), binary.LittleEndian.Uint64(mem[envoyshm.OffsetFlags:]), "only bit 0 is cleared")

	path, _ = envoyRegionFile(t, envoyshm.Size, 10, envoyshm.Size)
	_, err = mapRegion(refOf(t, path))
	require.ErrorContains(t, err, fmt.Sprintf("size_ %d, version_ 10: not Envoy's hot restart version 11.%d layout", envoyshm.Size, envoyshm.Size))

	path, _ = envoyRegionFile(t, 32, envoyshm.Version, envoyshm.Size)
	_, err = mapRegion(refOf(t, path))
	require.ErrorContains(t, err, "size_ 32, version_ 11: not Envoy's")

	path, _ = envoyRegionFile(t, 32, envoyshm.Version, 32) // fakeenvoy's old 32-byte region
	_, err = mapRegion(refOf(t, path))
	require.ErrorContains(t, err, fmt.Sprintf("is 32 bytes, not Envoy's %d-byte", envoyshm.Size))

	_, err = mapRegion(regionRef{path: filepath.Join(t.TempDir(), "missing")})
	require.ErrorContains(t, err, "no such file")
}

func TestMapRegionOnlyTheFileTheEpochMaps(t *testing.T) {
	// Given an epoch mapping a region (its maps name the file by inode),
	path, _ := envoyRegionFile(t, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	mapped := refOf(t, path)
	// when the path is then another file (a region made anew under the same
	// name, here holding INITIALIZING),
	tmp := path + ".new"
	writeRegion(t, tmp, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	require.NoError(t, os.Rename(tmp, path))

	// then that file is not taken for the epoch's region.
	_, err := mapRegion(mapped)
	require.ErrorIs(t, err, errReplaced)
	g := &InitGate{}
	_, err = g.find(mapped)
	require.ErrorIs(t, err, errReplaced)
	require.False(t, g.Known())
}

func TestRegionInMaps(t *testing.T) {
	maps := strings.Join([]string{
		"55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 1234 /usr/local/bin/envoy",
		"7f0000000000-7f0000001000 rw-s 00000000 00:19 99 /dev/shm/envoy_shared_memory_70 (deleted)",
		"7f0000001000-7f0000002000 rw-s 00000000 00:1a 100 /dev/shm/envoy_shared_memory_0",
		"7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]",
	}, "\n")
	got, ok := regionIn([]byte(maps))
	require.True(t, ok)
	require.Equal(t, regionRef{path: "/dev/shm/envoy_shared_memory_0", major: 0, minor: 0x1a, ino: 100}, got)
	_, ok = regionIn([]byte("7f0000000000-7f0000001000 r--p 00000000 08:01 1 /lib/libc.so.6\n"))
	require.False(t, ok)

	path, _ := envoyRegionFile(t, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	mapForTest(t, path)
	ref, alive := regionInMaps(os.Getpid())
	require.True(t, alive)
	require.Equal(t, refOf(t, path), ref, "path, device and inode")
	_, alive = regionInMaps(1 << 30) // no such process
	require.False(t, alive)
}

// events collects what a watcher reports.
type events chan machine.Event

func (e events) report(ev machine.Event) { e <- ev }

func (e events) next(t *testing.T) machine.Event {
	t.Helper()
	select {
	case ev := <-e:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event from the watcher within 10s")
		return nil
	}
}

func TestWatchInitFollowsTheFlag(t *testing.T) {
	// Given a region mapped by "the epoch" (this process), holding INITIALIZING,
	path, _ := envoyRegionFile(t, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	mem := mapForTest(t, path)
	flags := mem[envoyshm.OffsetFlags:]
	binary.LittleEndian.PutUint64(flags, 1)
	g := &InitGate{discoverFor: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(events, 4)
	done := make(chan struct{})
	go func() { defer close(done); g.Watch(ctx, 3, os.Getpid(), false, got.report) }()

	// the watcher finds it in /proc/PID/maps and reports the flag set,
	require.Equal(t, machine.InitStarted{Epoch: 3}, got.next(t))
	require.True(t, g.Known())

	// and, once the epoch clears it, that it is done.
	cleared := time.Now()
	binary.LittleEndian.PutUint64(flags, 0)
	require.Equal(t, machine.InitDone{Epoch: 3, Envoy: true}, got.next(t))
	t.Logf("flag clear to InitDone: %v", time.Since(cleared))
	<-done
}

func TestWatchInitEpochDoneBeforeItWasSeen(t *testing.T) {
	// An epoch that mapped the region and already cleared the flag is done.
	path, _ := envoyRegionFile(t, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	mapForTest(t, path)
	g := &InitGate{discoverFor: 10 * time.Second}
	got := make(events, 4)
	g.Watch(context.Background(), 1, os.Getpid(), false, got.report)
	require.Equal(t, machine.InitDone{Epoch: 1, Envoy: true}, got.next(t))
}

func TestWatchInitUnknownLayoutWarns(t *testing.T) {
	path, _ := envoyRegionFile(t, envoyshm.Size, 12, envoyshm.Size)
	mapForTest(t, path)
	g := &InitGate{discoverFor: 10 * time.Second}
	got := make(events, 4)
	g.Watch(context.Background(), 2, os.Getpid(), false, got.report)
	ev := got.next(t).(machine.InitDone)
	require.Equal(t, 2, ev.Epoch)
	require.Contains(t, ev.Warning, "version_ 12: not Envoy's hot restart version")
	require.False(t, g.Known())
}

// Envoy's epoch 0 maps its new region and only then writes size_ and
// version_: a header still zero is a region being made, not an unknown
// layout (taken for one, it turned the gate off for every epoch).
func TestWatchInitWaitsForAnUnwrittenHeader(t *testing.T) {
	// Given an epoch mapping a region whose header is still zero,
	path, _ := envoyRegionFile(t, 0, 0, envoyshm.Size)
	mapForTest(t, path)

	// when its header stays zero for as long as the region is searched,
	// the epoch is not Envoy, with no warning;
	g := &InitGate{discoverFor: 100 * time.Millisecond}
	got := make(events, 4)
	g.Watch(context.Background(), 0, os.Getpid(), false, got.report)
	require.Equal(t, machine.InitDone{Epoch: 0}, got.next(t))
	require.False(t, g.Known())

	// when it is written while the gate looks, with INITIALIZING set, the
	// gate sees the epoch initializing, then done.
	g = &InitGate{discoverFor: 10 * time.Second}
	done := make(chan struct{})
	go func() { g.Watch(context.Background(), 0, os.Getpid(), false, got.report); close(done) }()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	header := binary.LittleEndian.AppendUint64(nil, envoyshm.Size)
	header = binary.LittleEndian.AppendUint64(header, envoyshm.Version)
	setFlags(t, path, envoyshm.FlagInitializing)
	_, err = f.WriteAt(header, envoyshm.OffsetSize)
	require.NoError(t, err)
	require.Equal(t, machine.InitStarted{Epoch: 0}, got.next(t))
	setFlags(t, path, 0)
	require.Equal(t, machine.InitDone{Epoch: 0, Envoy: true}, got.next(t))
	<-done
}

func TestRunsRestarterExe(t *testing.T) {
	// This process runs its own executable: it is what a child between
	// fork and exec looks like, sharing the restarter's mappings.
	require.True(t, runsRestarterExe(os.Getpid()))
	sleep := exec.Command("sleep", "30")
	require.NoError(t, sleep.Start())
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	require.False(t, runsRestarterExe(sleep.Process.Pid))
}

func TestWatchInitNotEnvoy(t *testing.T) {
	// A process that maps no region is not Envoy: after discoverFor, the gate
	// is done with it (InitDone, no warning), and never saw it initializing.
	sleep := exec.Command("sleep", "30")
	require.NoError(t, sleep.Start())
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	g := &InitGate{discoverFor: 50 * time.Millisecond}
	got := make(events, 4)
	g.Watch(context.Background(), 0, sleep.Process.Pid, false, got.report)
	require.Len(t, got, 1)
	require.Equal(t, machine.InitDone{Epoch: 0}, <-got)
	require.False(t, g.Known())
}

// staleRegion leaves a region in /dev/shm as an earlier run can: Envoy's
// layout, INITIALIZING set (an epoch killed while starting, or Envoy's
// --mode init_only), mapped by no process (not even the test's, whose
// maps play an epoch's). It returns the function that reads its flags_.
func staleRegion(t *testing.T) (flags func() uint64) {
	t.Helper()
	path, _ := envoyRegionFile(t, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	_, err = f.WriteAt(binary.LittleEndian.AppendUint64(nil, 1), envoyshm.OffsetFlags)
	require.NoError(t, err)
	return func() uint64 {
		b := make([]byte, 8)
		_, err := f.ReadAt(b, envoyshm.OffsetFlags)
		require.NoError(t, err)
		return binary.LittleEndian.Uint64(b)
	}
}

func TestWatchInitIgnoresAStaleRegionOfTheSameName(t *testing.T) {
	// Given a stale region holding INITIALIZING under the epochs' base id,
	// and an epoch that maps no region (not Envoy, or Envoy not there yet),
	staleRegion(t)
	sleep := exec.Command("sleep", "30")
	require.NoError(t, sleep.Start())
	defer func() { sleep.Process.Kill(); sleep.Wait() }()

	// when it is watched,
	g := &InitGate{discoverFor: 100 * time.Millisecond}
	got := make(events, 4)
	g.Watch(context.Background(), 1, sleep.Process.Pid, false, got.report)

	// then the stale region is not taken for the epoch's: never seen
	// initializing, it is found not to be Envoy.
	require.Len(t, got, 1)
	require.Equal(t, machine.InitDone{Epoch: 1}, <-got)
	require.False(t, g.Known())
}

func TestClearInitHealsTheKnownRegionOnly(t *testing.T) {
	// Given a stale region of the same name, never mapped by an epoch,
	stale := staleRegion(t)
	g := &InitGate{}
	// when a dead epoch's flag is healed before any region is known, then
	// the stale one is left alone: it is none of the epochs'.
	require.False(t, g.ClearInit(), "no region known")
	require.Equal(t, uint64(1), stale())

	// Given the region an epoch (this process) maps, known to the gate, and
	// the flag that epoch left set,
	path, _ := envoyRegionFile(t, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	mem := mapForTest(t, path)
	binary.LittleEndian.PutUint64(mem[envoyshm.OffsetFlags:], 1)
	require.True(t, g.InitializingNow(os.Getpid()))

	// then that flag is cleared, once.
	require.True(t, g.ClearInit())
	require.Zero(t, binary.LittleEndian.Uint64(mem[envoyshm.OffsetFlags:]))
	require.False(t, g.ClearInit(), "nothing to clear")
	require.Equal(t, uint64(1), stale())
}

func TestInitializingNowFindsTheRegionOnce(t *testing.T) {
	// Given an epoch (this process) holding the flag, its region unknown,
	path, _ := envoyRegionFile(t, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	mem := mapForTest(t, path)
	binary.LittleEndian.PutUint64(mem[envoyshm.OffsetFlags:], 1)
	g := &InitGate{}

	// a restart request looks and finds it initializing;
	require.True(t, g.InitializingNow(os.Getpid()))
	require.True(t, g.Known())
	// the region known (the watcher may have found it and not told yet), a
	// second look still reads the flag,
	require.True(t, g.InitializingNow(os.Getpid()))
	// and sees it cleared.
	binary.LittleEndian.PutUint64(mem[envoyshm.OffsetFlags:], 0)
	require.False(t, g.InitializingNow(os.Getpid()))
}

func TestSetQueuedWakesTheWatchers(t *testing.T) {
	closed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	g := &InitGate{}
	first := g.hurried()
	g.SetQueued(false)
	require.False(t, closed(first), "nothing queued")
	g.SetQueued(true)
	require.True(t, closed(first), "a restart queued wakes the watchers")
	second := g.hurried()
	g.SetQueued(true)
	require.False(t, closed(second), "still queued: nothing new")
	g.SetQueued(false)
	g.SetQueued(true)
	require.True(t, closed(second), "queued again")
}
