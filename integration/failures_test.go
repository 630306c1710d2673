package integration

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Scenario 5: a new epoch with a bad config fails; the restarter kills the
// old epoch and exits 1, as hot-restarter.py does, so the process manager
// restarts the whole instance.
func TestNewEpochWithBadConfig(t *testing.T) {
	t.Parallel()
	// Given epoch 0 serving, and a config that epoch 1 will find broken,
	sb := newSandbox(t, `[ "$RESTART_EPOCH" -eq 0 ] || CONFIG="$DIR/broken.yaml"
fakeenvoy --base-id "$BASE_ID"
`)
	broken := sb.Path("broken.yaml")
	require.NoError(t, os.WriteFile(broken, []byte("static_resources:\n  clusters: []\n  bogus_field: 1\n"), 0o644))
	r := sb.start()
	e0, _ := sb.waitLive(0)

	// when the operator hot restarts,
	r.Signal(syscall.SIGHUP)

	// then epoch 1 reports the config error and exits 1,
	e1 := sb.waitForked(1)
	r.WaitLine(epochLine(e1.PID, `error initializing configuration '`+broken+`': `), 1, wait)
	require.Equal(t, "exited with code=1", sb.waitReaped(e1))
	// and the restarter force kills epoch 0, reaps it and exits 1.
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	r.WaitLine(abnormalRE, 1, wait)
	r.WaitLine(`force killing PID=`+strconv.Itoa(e0.PID)+`$`, 1, wait)
	require.Equal(t, "was killed with signal=9", sb.waitReaped(e0))
	r.WaitLine(`exiting with code=1$`, 1, wait)
	sb.requireAllGone()
	require.Len(t, sb.forked(), 2)
}

// Scenario 6: an epoch killed by a signal takes everything down, exit 1.
func TestEpochKilledBySIGKILL(t *testing.T) { testEpochKilled(t, syscall.SIGKILL) }

func TestEpochKilledBySIGSEGV(t *testing.T) { testEpochKilled(t, syscall.SIGSEGV) }

func testEpochKilled(t *testing.T, sig syscall.Signal) {
	t.Parallel()
	// Given two live epochs (the old one kept by a long parent-shutdown time),
	sb := newSandbox(t, `fakeenvoy --base-id "$BASE_ID" --parent-shutdown-time-s 60`+"\n")
	r := sb.start()
	e0, _ := sb.waitLive(0)
	r.Signal(syscall.SIGHUP)
	e1, _ := sb.waitLive(1)

	// when the new epoch dies of sig,
	signal(t, e1.PID, sig)

	// then the restarter reports it, force kills the old epoch, exits 1,
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	// (Envoy's fatal signal handler prints a backtrace and re-raises the
	// signal, so Envoy dies of it and the restarter logs the signal.)
	require.Equal(t, "was killed with signal="+strconv.Itoa(int(sig)), sb.waitReaped(e1), "how epoch 1 ended")
	r.WaitLine(abnormalRE, 1, wait)
	r.WaitLine(`force killing PID=`+strconv.Itoa(e0.PID)+`$`, 1, wait)
	require.Equal(t, "was killed with signal=9", sb.waitReaped(e0))
	// and no process is left.
	sb.requireAllGone()
	pids, _ := proctest.Children(r.PID())
	require.Empty(t, pids)
}

// Scenario 7: an epoch that ignores SIGTERM is KILLed after --term-wait.
func TestEpochIgnoringSIGTERMIsKilledAfterTermWait(t *testing.T) {
	t.Parallel()
	const termWait = 500 * time.Millisecond
	// Given an epoch that ignores SIGTERM and a term wait of 500ms,
	sb := newSandbox(t, `fakeenvoy --base-id "$BASE_ID" --fake-ignore-sigterm`+"\n")
	r := sb.start("--term-wait", termWait.String())
	e0, _ := sb.waitLive(0)

	// when the restarter gets SIGTERM,
	began := time.Now()
	r.Signal(syscall.SIGTERM)
	exit := r.Wait(wait)
	elapsed := time.Since(began)

	// then the epoch ignores the TERM, is KILLed once the wait is over, and
	// the restarter exits 1 within the wait plus a small margin.
	require.Equal(t, proctest.Exit{Code: 1}, exit)
	r.WaitLine(epochLine(e0.PID, `ignoring SIGTERM \(--fake-ignore-sigterm\)$`), 1, wait)
	r.WaitLine(`children still running after --term-wait=`+termWait.String()+`$`, 1, wait)
	r.WaitLine(`force killing PID=`+strconv.Itoa(e0.PID)+`$`, 1, wait)
	require.Equal(t, "was killed with signal=9", sb.waitReaped(e0))
	require.GreaterOrEqual(t, elapsed, termWait)
	require.Less(t, elapsed, termWait+2*time.Second)
	sb.requireAllGone()
}
