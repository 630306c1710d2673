package osproc

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"

	"github.com/stretchr/testify/require"
)

// knownGate returns a gate that already knows a region (found in an
// earlier epoch's maps), and that region's path.
func knownGate(t *testing.T) (*InitGate, string) {
	t.Helper()
	path, _ := envoyRegionFile(t, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	g := NewInitGate(10 * time.Second)
	_, err := g.find(refOf(t, path))
	require.NoError(t, err)
	require.True(t, g.Known())
	return g, path
}

// watchInBackground runs g.Watch and returns the events it reports, the
// cancel of its context (the epoch reaped) and a channel closed when it
// returns; the watch is stopped when the test ends.
func watchInBackground(t *testing.T, g *InitGate, epoch, pid int) (events, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(events, 8)
	done := make(chan struct{})
	go func() { defer close(done); g.Watch(ctx, epoch, pid, false, got.report) }()
	t.Cleanup(func() { cancel(); <-done })
	return got, cancel, done
}

// returns waits up to 10s for done to be closed.
func returns(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still watching after 10s", what)
	}
}

func TestWatchFollowsTheEpochsToANewRegion(t *testing.T) {
	// Given a known region, and an epoch (a start script's child) that maps
	// another one, made anew by its epoch 0, holding INITIALIZING,
	g, _ := knownGate(t)
	path, _ := envoyRegionFile(t, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	setFlags(t, path, 1)
	script := startMappingChild(t, path)

	// when it is watched, the new region is the epochs' from now on,
	got, _, done := watchInBackground(t, g, 5, script)
	require.Equal(t, machine.InitStarted{Epoch: 5}, got.next(t))
	require.Equal(t, refOf(t, path), g.current().ref)

	// and its flag clearing ends the watch.
	setFlags(t, path, 0)
	require.Equal(t, machine.InitDone{Epoch: 5, Envoy: true}, got.next(t))
	returns(t, done, "InitDone")
}

func TestWatchEndsWhenTheEpochIsGone(t *testing.T) {
	// Given a known region, its flag clear, and an epoch that never maps it,
	g, _ := knownGate(t)
	sleep := exec.Command("sleep", "60")
	pid := startChild(t, sleep)
	got, _, done := watchInBackground(t, g, 2, pid)

	// when the epoch exits and is reaped,
	require.NoError(t, sleep.Process.Kill())
	sleep.Wait()

	// then the watch ends, with nothing to report.
	returns(t, done, "epoch gone")
	require.Empty(t, got)
}

func TestWatchStopsWithItsContext(t *testing.T) {
	// Given an epoch seen holding the flag of the known region,
	g, path := knownGate(t)
	setFlags(t, path, 1)
	pid := startChild(t, exec.Command("sleep", "60"))
	got, cancel, done := watchInBackground(t, g, 3, pid)
	require.Equal(t, machine.InitStarted{Epoch: 3}, got.next(t))

	// when a restart is queued, the watch goes on;
	g.SetQueued(true)
	require.Empty(t, got)

	// when the epoch is reaped (the context done), the watch ends, with
	// nothing more to report.
	cancel()
	returns(t, done, "context done")
	require.Empty(t, got)
}

func TestWatchDiscoveryStopsWithItsContext(t *testing.T) {
	// Given no region known and an epoch mapping none (yet), reaped while
	// it is looked for,
	pid := startChild(t, exec.Command("sleep", "60"))
	g := NewInitGate(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	// the gate is done with it: not Envoy, no warning.
	got := make(events, 4)
	g.Watch(ctx, 6, pid, false, got.report)
	require.Equal(t, machine.InitDone{Epoch: 6}, got.next(t))
	require.Empty(t, got)
	require.False(t, g.Known())
}

func TestInitializingNowOfWhatIsNotEnvoysRegion(t *testing.T) {
	// A process that maps no region is not initializing.
	g := NewInitGate(time.Second)
	pid := startChild(t, exec.Command("sleep", "60"))
	require.False(t, g.InitializingNow(pid))

	// Nor is one mapping a region of another layout, even with the bit set:
	// the watcher reports that layout.
	path, _ := envoyRegionFile(t, envoyshm.Size, 12, envoyshm.Size)
	setFlags(t, path, 1)
	mapForTest(t, path)
	require.False(t, g.InitializingNow(os.Getpid()))
	require.False(t, g.Known())
}
