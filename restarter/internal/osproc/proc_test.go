package osproc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The real OS layer, against real children.

func TestSiginfoPIDOfARealChild(t *testing.T) {
	pid, err := testForker.Start("/bin/sh", []string{"sh", "-c", "exit 3"}, nil, "", nil, nil)
	require.NoError(t, err)
	var info unix.Siginfo
	// Peek at its exit without reaping it: si_pid must be its pid.
	for {
		err = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	require.NoError(t, err)
	require.Equal(t, int32(pid), siginfoPID(&info))
	require.Equal(t, []machine.Exited{{PID: pid, Code: 3}}, Reap([]int{pid}))
	require.Empty(t, Reap([]int{pid}), "reaped once")
}

func TestStartAndReapRealChildren(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	pid, err := testForker.Start("/bin/sh", []string{"sh", "-c", `echo "$0 $RESTART_EPOCH $(pwd)" > out; exec sleep 30`}, []string{"RESTART_EPOCH=4"}, dir, nil, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { b, _ := os.ReadFile(out); return len(b) > 0 }, 10*time.Second, 5*time.Millisecond)
	b, _ := os.ReadFile(out)
	require.Equal(t, "sh 4 "+dir+"\n", string(b))
	require.Empty(t, Reap([]int{pid}), "still running")

	require.NoError(t, Kill(pid, syscall.SIGTERM))
	var got []machine.Exited
	require.Eventually(t, func() bool { got = Reap([]int{pid}); return len(got) > 0 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []machine.Exited{{PID: pid, Signal: machine.SIGTERM}}, got)
	require.NoError(t, Kill(pid, syscall.SIGTERM), "ESRCH is not an error")
}

func TestStartExecFailure(t *testing.T) {
	_, err := testForker.Start("/nonexistent/start.sh", []string{"start.sh"}, nil, "", nil, nil)
	require.EqualError(t, err, "cannot execute /nonexistent/start.sh: no such file or directory (errno=2 ENOENT)")
	_, err = testForker.Start("/bin/sh", []string{"sh"}, nil, "/nonexistent", nil, nil)
	require.ErrorContains(t, err, "cannot execute /bin/sh: no such file or directory")
}

func TestRunHelper(t *testing.T) {
	ctx := context.Background()
	out, err := testForker.RunHelper(ctx, exec.Command("/bin/sh", "-c", "echo out; echo err >&2; exit 2"))
	require.EqualError(t, err, "exit status 2")
	require.Equal(t, "out\nerr\n", out)

	// Only the tail of a chatty helper is kept.
	out, err = testForker.RunHelper(ctx, exec.Command("/bin/sh", "-c", "head -c 20000 /dev/zero | tr '\\0' x; echo END"))
	require.NoError(t, err)
	require.Len(t, out, maxOutput)
	require.True(t, strings.HasSuffix(out, "xEND\n"))

	// Cancelling its context kills it.
	ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = testForker.RunHelper(ctx, exec.Command("/bin/sh", "-c", "exec sleep 30"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 20*time.Second)

	_, err = testForker.RunHelper(context.Background(), exec.Command("/nonexistent"))
	require.Error(t, err)
}

// TestReapOrphans makes the test process a subreaper (for the rest of its
// life), as the restarter is as PID 1.
func TestReapOrphans(t *testing.T) {
	require.NoError(t, BecomeSubreaper())
	dir := t.TempDir()
	// The start script leaves a grandchild behind and exits: the grandchild
	// is re-parented to us.
	pid, err := testForker.Start("/bin/sh", []string{"sh", "-c", `(sleep 0.2; exit 5) & echo $! > orphan`}, nil, dir, nil, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(Reap([]int{pid})) > 0 }, 10*time.Second, 5*time.Millisecond)
	b, err := os.ReadFile(filepath.Join(dir, "orphan"))
	require.NoError(t, err)
	orphan, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	var got []machine.Exited
	require.Eventually(t, func() bool { got = append(got, testForker.ReapOrphans()...); return len(got) > 0 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []machine.Exited{{PID: orphan, Code: 5}}, got)
}

func TestReapOrphansLeavesAHelperThatExitsAtOnce(t *testing.T) {
	// Given the orphan reaping running all the time (as SIGCHLDs come),
	stop := make(chan struct{})
	var stolen []machine.Exited
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		for {
			select {
			case <-stop:
				return
			default:
				stolen = append(stolen, testForker.ReapOrphans()...)
			}
		}
	}()

	// helpers that exit at once are waited for by their own runs, never
	// taken for orphans between their fork and their registration.
	for range 100 {
		_, err := testForker.RunHelper(context.Background(), exec.Command("/bin/true"))
		require.NoError(t, err)
	}
	close(stop)
	<-reaped
	require.Empty(t, stolen)
}

func TestSignalName(t *testing.T) {
	require.Equal(t, "SIGHUP", SignalName(syscall.SIGHUP))
	require.Equal(t, "SIGSEGV", SignalName(syscall.SIGSEGV))
	require.Equal(t, "signal 99", SignalName(syscall.Signal(99)))
}

func TestMonotonicUsec(t *testing.T) {
	a := MonotonicUsec()
	require.Positive(t, a)
	require.GreaterOrEqual(t, MonotonicUsec(), a)
}

// testForker is the real forker, shared by the tests.
var testForker = NewForker()
