package supervisor

import (
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
	"github.com/envoy-restarter/restarter/restarter/internal/osproc"
)

// What the epochs leave behind at exit, over fakeOS: processes of the
// restarter's group carrying its mark, and, as subreaper, orphans.

// leftovers are the processes the epochs left behind, as the fake OS shows
// them: each heeds SIGTERM, SIGKILL, or nothing.
type leftovers struct {
	mu      sync.Mutex
	group   map[int]syscall.Signal // marked members of the restarter's group, by the signal they heed (0: none)
	orphans map[int]syscall.Signal // adopted as subreaper
}

// leftBehindRunner returns a runner over f whose process group holds the
// live epochs and left.group, and whose orphans are left.orphans.
func leftBehindRunner(t *testing.T, f *fakeOS, subreaper bool, left *leftovers) (*runner, *syncBuffer) {
	t.Helper()
	cfg := testConfig()
	cfg.Subreaper = subreaper
	r, logs := fakeRunner(t, cfg, f)
	r.sys.groupMembers = func(id string) []int {
		require.Equal(t, instanceID(cfg), id, "only processes with the restarter's mark")
		f.mu.Lock()
		pids := make([]int, 0, len(f.live))
		for pid := range f.live {
			pids = append(pids, pid)
		}
		f.mu.Unlock()
		left.mu.Lock()
		defer left.mu.Unlock()
		for pid := range left.group {
			pids = append(pids, pid)
		}
		slices.Sort(pids)
		return pids
	}
	r.sys.orphans = func(epochs []int) []int {
		left.mu.Lock()
		defer left.mu.Unlock()
		var pids []int
		for pid := range left.orphans {
			require.NotContains(t, epochs, pid)
			pids = append(pids, pid)
		}
		slices.Sort(pids)
		return pids
	}
	r.sys.kill = func(pid int, sig syscall.Signal) error {
		left.mu.Lock()
		heeds, ok := left.group[pid]
		if o, orphan := left.orphans[pid]; orphan {
			heeds, ok = o, true
		}
		if ok && heeds != 0 && (sig == heeds || sig == syscall.SIGKILL) {
			delete(left.group, pid)
			delete(left.orphans, pid)
		}
		left.mu.Unlock()
		if !ok {
			return f.kill(pid, sig) // an epoch
		}
		f.record("kill %d %s", pid, osproc.SignalName(sig))
		return nil
	}
	return r, logs
}

// leave ends pid, a leftover, on its own.
func (l *leftovers) leave(pid int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.group, pid)
	delete(l.orphans, pid)
}

// stopInBackground runs r.stopLeftBehind and returns a channel closed once
// it returned.
func stopInBackground(r *runner) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.stopLeftBehind()
	}()
	return done
}

func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("still stopping what the epochs left behind after 10s")
	}
}

// armedTimer waits for a running fake timer of d armed at index from or
// later, and returns its index.
func armedTimer(t *testing.T, f *fakeOS, d time.Duration, from int) int {
	t.Helper()
	idx := -1
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i := len(f.timers) - 1; i >= from; i-- {
			if f.timers[i].after == d && !f.timers[i].stopped {
				idx = i
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond, "no %s timer armed", d)
	return idx
}

// kills returns the kill calls f recorded since the last takeCalls.
func kills(f *fakeOS) []string {
	var out []string
	for _, c := range f.takeCalls() {
		if strings.HasPrefix(c, "kill ") {
			out = append(out, c)
		}
	}
	return out
}

func TestRunStopsWhatTheEpochsLeftBehind(t *testing.T) {
	// Given a start script that left a process behind, which heeds SIGTERM,
	f := newFakeOS()
	left := &leftovers{group: map[int]syscall.Signal{500: syscall.SIGTERM}}
	r, logs := leftBehindRunner(t, f, false, left)
	code := runLoop(r)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "forked new child process with PID=100") }, 10*time.Second, time.Millisecond)

	// when the restarter is stopped, then, once epoch 0 is gone, the
	// leftover is TERMed, and the restarter exits 0.
	f.raise(syscall.SIGTERM)
	require.Equal(t, machine.ExitClean, waitCode(t, code))
	require.Equal(t, []string{"kill 100 SIGTERM", "kill 500 SIGTERM"}, kills(f))
	require.Contains(t, logs.String(), "sending TERM to 1 process(es) left behind by the epochs: PIDs [500]")
}

func TestStopLeftBehindTakesOrphansTooButNoEpoch(t *testing.T) {
	// Given, as subreaper, an epoch that survived, a group member that heeds
	// SIGTERM, and an orphan (also of the group) that does not,
	f := newFakeOS()
	left := &leftovers{
		group:   map[int]syscall.Signal{500: syscall.SIGTERM, 600: 0},
		orphans: map[int]syscall.Signal{600: 0},
	}
	r, logs := leftBehindRunner(t, f, true, left)
	handle(t, r, machine.Started{})
	f.takeCalls()
	done := stopInBackground(r)

	// when the orphan exits while the restarter waits, its SIGCHLD ends the
	// wait;
	poll := armedTimer(t, f, leftBehindPoll, 0)
	left.leave(600)
	f.raise(syscall.SIGCHLD)
	waitDone(t, done)

	// both were TERMed, once, the epoch never, and nothing was KILLed.
	require.Contains(t, logs.String(), "sending TERM to 2 process(es) left behind by the epochs: PIDs [600 500]")
	require.Equal(t, []string{"kill 600 SIGTERM", "kill 500 SIGTERM"}, kills(f))
	require.True(t, f.timers[poll].stopped, "no poll left armed")
	require.True(t, f.timers[armedTimerIndex(f, testTermWait)].stopped, "no --term-wait left armed")
}

// armedTimerIndex returns the index of the first fake timer of d, -1 if none.
func armedTimerIndex(f *fakeOS, d time.Duration) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.IndexFunc(f.timers, func(t *fakeTimer) bool { return t.after == d })
}

func TestStopLeftBehindKillsWhatOutlivesTermWait(t *testing.T) {
	// Given a leftover that ignores SIGTERM but not SIGKILL,
	f := newFakeOS()
	left := &leftovers{group: map[int]syscall.Signal{500: syscall.SIGKILL}}
	r, logs := leftBehindRunner(t, f, false, left)
	done := stopInBackground(r)

	// when it is still there at the next poll, it is looked at again;
	first := armedTimer(t, f, leftBehindPoll, 0)
	f.fire(first)
	armedTimer(t, f, leftBehindPoll, first+1)
	// and when --term-wait is over, it is KILLed, and gone.
	f.fire(armedTimerIndex(f, testTermWait))
	waitDone(t, done)
	require.Equal(t, []string{"kill 500 SIGTERM", "kill 500 SIGKILL"}, kills(f))
	require.Contains(t, logs.String(), "PIDs [500] left behind still running after --term-wait=30s; force killing them")
	require.NotContains(t, logs.String(), "giving up")
}

func TestStopLeftBehindGivesUpOnWhatSurvivesSIGKILL(t *testing.T) {
	// Given a leftover that no signal ends (stuck in the kernel),
	f := newFakeOS()
	left := &leftovers{group: map[int]syscall.Signal{500: 0}}
	r, logs := leftBehindRunner(t, f, false, left)
	done := stopInBackground(r)

	// when --term-wait and then KillWait are over,
	armedTimer(t, f, testTermWait, 0)
	f.fire(armedTimerIndex(f, testTermWait))
	f.fire(armedTimer(t, f, machine.KillWait, 0))

	// then the restarter gives up on it, and says so.
	waitDone(t, done)
	require.Equal(t, []string{"kill 500 SIGTERM", "kill 500 SIGKILL"}, kills(f))
	require.Contains(t, logs.String(), "PIDs [500] left behind did not exit after SIGKILL; giving up on them")
}

func TestStopLeftBehindWithNothingLeftDoesNothing(t *testing.T) {
	f := newFakeOS()
	r, logs := leftBehindRunner(t, f, true, &leftovers{})
	r.stopLeftBehind()
	require.Empty(t, kills(f))
	require.Empty(t, f.timers)
	require.NotContains(t, logs.String(), "left behind")
}
