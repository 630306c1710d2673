package integration

import (
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/procfs"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Issue 19, defect 1: what a start script leaves in the background (a log
// shipper; here a sleep) lives in its epoch's process group, and is stopped
// when the restarter exits, so it can neither outlive the restarter nor
// block the next start.

// Smallest repro: a start script that leaves a sleep behind and exits 0,
// run twice. The second run used to exit 1 ("they hold its base id").
func TestBackgroundHelperIsStoppedAtExit(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, `sleep 300 &
echo $! >"$DIR/helper.$RESTART_EPOCH.pid"
`)
	for run := range 2 {
		r := sb.start()
		require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait), "run %d", run)
		helper := readPID(t, sb.Path("helper.0.pid"))
		killAtEnd(t, helper)
		r.WaitLine(`sending TERM to 1 process\(es\) left behind by the epochs: PIDs \[`+strconv.Itoa(helper)+`\]$`, 1, wait)
		require.False(t, proctest.Alive(helper), "run %d: the helper outlived the restarter", run)
		require.Empty(t, r.Lines(`earlier run`), "run %d", run)
	}
}

// The outage: Envoy crashes while its start script's helper runs.
// The restarter exits 1, as it should, and takes the helper with it; the
// process manager's next start serves.
func TestEnvoyCrashWithABackgroundHelperDoesNotBlockTheNextStart(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, `sleep 300 &
echo $! >"$DIR/helper.pid"
fakeenvoy --base-id "$BASE_ID"
`)
	r := sb.start()
	e0, _ := sb.waitLive(0)
	helper := readPID(t, sb.Path("helper.pid"))
	killAtEnd(t, helper)
	// (once it runs sleep, its shell has waited for its mv: a leftover of
	// the same run, listed too while it lives)
	proctest.WaitFor(t, wait, "the helper running sleep", func() bool {
		exe, _ := procfs.Exe(helper)
		return filepath.Base(exe) == "sleep"
	})

	signal(t, e0.PID, syscall.SIGSEGV)
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	require.False(t, proctest.Alive(helper), "the helper outlived the restarter")

	r2 := sb.start()
	sb.waitLive(0)
	require.Empty(t, r2.Lines(`earlier run`))
	r2.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r2.Wait(wait))
	sb.requireAllGone()
}

// A helper that left its epoch's process group (setsid) outlives the
// restarter; the next run finds it, warns that it holds no Envoy state, and
// starts anyway.
func TestLeftoverHelperOfAnEarlierRunOnlyWarns(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, `if [ ! -e "$DIR/helper.pid" ]; then
	setsid sh -c 'echo $$ >"$0/helper.pid.tmp"; mv "$0/helper.pid.tmp" "$0/helper.pid"; exec sleep 300' "$DIR" &
fi
fakeenvoy --base-id "$BASE_ID"
`)
	r := sb.start()
	e0, _ := sb.waitLive(0)
	helper := readPID(t, sb.Path("helper.pid"))
	killAtEnd(t, helper)
	// (once it runs sleep, its shell has waited for its mv: a leftover of
	// the same run, listed too while it lives)
	proctest.WaitFor(t, wait, "the helper running sleep", func() bool {
		exe, _ := procfs.Exe(helper)
		return filepath.Base(exe) == "sleep"
	})
	r.Signal(syscall.SIGKILL) // as a crash of the restarter itself would
	r.Wait(wait)
	waitGone(t, e0.PID, "epoch 0, told by its parent-death signal")
	require.True(t, proctest.Alive(helper), "the helper left its group, and outlived the restarter")

	r2 := sb.start()
	sb.waitLive(0)
	r2.WaitLine(`\]\[warning\]\[restarter\] processes started by an earlier run of this restarter are still running, holding no Envoy state \(no Envoy shared memory mapped\): PID=`+
		strconv.Itoa(helper)+` \(epoch 0, parent PID=\d+\); leaving them alone$`, 1, wait)
	require.Empty(t, r2.Lines(`they hold its base id`))
	r2.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r2.Wait(wait))
	require.True(t, proctest.Alive(helper), "not the second run's to stop")
}
