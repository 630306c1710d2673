package integration

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// runRestarter runs `restarter args...` to completion (killing it after
// wait) and returns its exit code and combined output.
func runRestarter(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return runCommand(t, proctest.Binary(t, "restarter"), args...)
}

// runCommand runs path with args to completion (killing it after wait) and
// returns its exit code and combined output.
func runCommand(t *testing.T, path string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	require.NoError(t, ctx.Err(), "%s did not exit within %v:\n%s", path, wait, out)
	if _, ok := err.(*exec.ExitError); !ok {
		require.NoError(t, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// readPID waits for file to hold a pid and returns it.
func readPID(t *testing.T, file string) int {
	t.Helper()
	var pid int
	proctest.WaitFor(t, wait, file, func() bool {
		b, err := os.ReadFile(file)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// waitGone waits for pid to terminate.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	proctest.WaitFor(t, wait, what+" (PID "+strconv.Itoa(pid)+") gone", func() bool { return !proctest.Alive(pid) })
}

// killAtEnd SIGKILLs pid when the test ends, for processes a scenario makes
// escape the restarter's process group.
func killAtEnd(t *testing.T, pid int) {
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
}

// Issue 14, defect 3: a flood of idle control connections under a small
// RLIMIT_NOFILE neither ends the accept loop nor takes the descriptors the
// next epoch's fork needs.
func TestControlConnectionFloodSparesHotRestarts(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	sock := sb.Path("control.sock")
	r := sb.start("--control-socket", sock)
	sb.waitLive(0)
	require.NoError(t, unix.Prlimit(r.PID(), unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 64, Max: 64}, nil))

	// Given 200 idle connections to the control socket,
	var flood []net.Conn
	for range 200 {
		c, err := net.Dial("unix", sock)
		require.NoError(t, err)
		flood = append(flood, c)
	}
	t.Cleanup(func() {
		for _, c := range flood {
			c.Close()
		}
	})

	// a hot restart still forks its epoch,
	r.Signal(syscall.SIGHUP)
	sb.waitLive(1)
	require.Empty(t, r.Lines(abnormalRE))

	// and once the flood is gone, the control socket answers again.
	for _, c := range flood {
		c.Close()
	}
	code, out := runRestarter(t, "status", "--control-socket", sock, "--timeout", wait.String())
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "phase: running\n")
	r.WaitLine(`control socket: 16 control connections are open: closing the oldest idle one for each new one$`, 1, wait)
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
}

// Issue 19, defect 2: idle connections to the control socket cannot lock
// the operator out: with more of them open than the restarter serves at
// once, `restarter status` and `restarter reload` still get their answers
// (each new connection takes the place of the oldest idle one).
func TestIdleControlConnectionsDoNotLockTheOperatorOut(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	sock := sb.Path("control.sock")
	r := sb.start("--control-socket", sock)
	sb.waitLive(0)

	// Given 20 connections that send nothing,
	for range 20 {
		c, err := net.Dial("unix", sock)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
	}

	// the operator still gets the status and a hot restart.
	code, out := runRestarter(t, "status", "--control-socket", sock, "--timeout", wait.String())
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "phase: running\n")
	code, out = runRestarter(t, "reload", "--control-socket", sock, "--timeout", wait.String())
	require.Equal(t, 0, code, out)
	require.Regexp(t, `^hot restart to epoch 1: ready \(restart #1, \d+\.\d\ds\)\n$`, out)
	sb.waitLive(1)
	r.WaitLine(`control socket: 16 control connections are open: closing the oldest idle one for each new one$`, 1, wait)
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
}

// groupStopBody: epoch 0 is fakeenvoy; epoch 1 stays in its start script
// (as a slow one would) until it is signalled.
const groupStopBody = `if [ "$RESTART_EPOCH" = 1 ]; then
	echo $$ >"$DIR/script.1.pid"
	sleep 300
fi
fakeenvoy --base-id "$BASE_ID"
`

// startEpoch1InItsScript runs the restarter on groupStopBody until epoch 0
// is LIVE and epoch 1 waits in its start script.
func startEpoch1InItsScript(t *testing.T) (*sandbox, *proctest.Proc, epoch) {
	t.Helper()
	sb := newSandbox(t, groupStopBody)
	r := sb.start()
	sb.waitLive(0)
	r.Signal(syscall.SIGHUP)
	e1 := sb.waitForked(1)
	readPID(t, sb.Path("script.1.pid"))
	return sb, r, e1
}

// Issue 14, defect 4: a stop signal sent to the whole process group
// (supervisord's stopasgroup, dumb-init's default, kill -TERM -PGID) kills
// an epoch still in its start script; that is part of the stop, not an
// abnormal exit, whichever the restarter sees first.
func TestGroupSIGTERMIsAStopNotAFailure(t *testing.T) {
	t.Parallel()
	sb, r, e1 := startEpoch1InItsScript(t)

	// When SIGTERM goes to the restarter's whole process group,
	require.NoError(t, syscall.Kill(-r.PID(), syscall.SIGTERM))

	// then everything stops and the restarter exits 0.
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	require.Equal(t, "was killed with signal=15", sb.waitReaped(e1))
	r.WaitLine(`all children exited cleanly$`, 1, wait)
	require.Empty(t, r.Lines(abnormalRE))
	sb.requireAllGone()
}

// Issue 14, defect 4, the ordering the kernel allows but a group signal
// rarely shows: the epoch's death is reaped before the restarter's own
// signal arrives.
func TestEpochKilledBySIGTERMJustBeforeTheRestarterIsAStop(t *testing.T) {
	t.Parallel()
	sb, r, e1 := startEpoch1InItsScript(t)

	signal(t, e1.PID, syscall.SIGTERM)
	r.WaitLine(`PID=`+strconv.Itoa(e1.PID)+` was killed by SIGTERM, perhaps sent to the whole process group: waiting up to 1s`, 1, wait)
	r.Signal(syscall.SIGTERM)

	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	r.WaitLine(`PID=`+strconv.Itoa(e1.PID)+` was stopped by the same signal: part of the shutdown$`, 1, wait)
	require.Empty(t, r.Lines(abnormalRE))
	sb.requireAllGone()
}

// Issue 14, defect 4: an epoch killed by SIGTERM from elsewhere, with no stop
// signal for the restarter, is still the abnormal exit it always was.
func TestEpochKilledBySIGTERMAloneIsAbnormal(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, `echo $$ >"$DIR/epoch.$RESTART_EPOCH.pid"
exec sleep 300
`)
	r := sb.start()
	pid := readPID(t, sb.Path("epoch.0.pid"))
	signal(t, pid, syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	r.WaitLine(`PID=`+strconv.Itoa(pid)+` was killed with signal=15$`, 1, wait)
	r.WaitLine(abnormalRE, 1, wait)
}
