package integration

import (
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Scenario 2: twenty hot restarts under load lose no request.
//
// Envoy loses no request in a hot restart when every old epoch gets its
// drain and parent-shutdown time: its child tells it to drain, then, after
// --parent-shutdown-time-s, to terminate. An epoch started sooner than that
// terminates its grandparent at once, with whatever requests it still holds
// (Envoy as well as fakeenvoy), so each SIGHUP here waits until the epoch
// the new one would terminate has exited on its own, and old epochs get
// losslessParentShutdownTime.
func TestHotRestartUnderLoad(t *testing.T) {
	const restarts = 20
	t.Parallel()
	// Given epoch 0 serving and clients hammering its listener,
	sb := newSandboxWith(t, "", losslessParentShutdownTime)
	r := sb.start()
	sb.waitLive(0)
	clients := fakeenvoytest.StartLoad(t, sb.addr(), 4)
	proctest.WaitFor(t, wait, "epoch 0 to answer", func() bool { return clients.Served(0) > 0 })

	// when the restarter gets SIGHUP twenty times, each once the newest
	// epoch is live and has answered requests and its parent has exited,
	for n := 1; n <= restarts; n++ {
		if n >= 2 {
			sb.waitReaped(sb.forked()[n-2])
		}
		r.Signal(syscall.SIGHUP)
		sb.waitLive(n)
		proctest.WaitFor(t, wait, "epoch "+strconv.Itoa(n)+" to answer", func() bool { return clients.Served(n) > 0 })
	}
	epochs := sb.forked()
	newest := epochs[restarts]
	sb.waitReaped(epochs[restarts-1])
	clients.Finish()

	// then no request failed and every epoch answered some,
	require.Empty(t, clients.Failed(), "failed requests")
	for n := 0; n <= restarts; n++ {
		require.Positive(t, clients.Served(n), "epoch %d answered no request", n)
	}
	// every old epoch drained and exited 0, told to by its child no sooner
	// than the child's parent-shutdown time after the child went live,
	for _, e := range epochs[:restarts] {
		require.Equal(t, "exited with code=0", sb.waitReaped(e), "epoch %d", e.N)
		r.WaitLine(epochLine(e.PID, `closing and draining listeners$`), 1, wait)
		told := lineTime(t, r.WaitLine(epochLine(e.PID, `shutting down due to child request$`), 1, wait)[0])
		child := epochs[e.N+1]
		live := lineTime(t, r.WaitLine(epochLine(child.PID, `all dependencies initialized\. starting workers$`), 1, wait)[0])
		// (The log's times are in milliseconds, truncated.)
		require.GreaterOrEqual(t, told.Sub(live), losslessParentShutdownTime-time.Millisecond, "epoch %d told to stop before its child's parent-shutdown time", e.N)
	}
	require.Len(t, epochs, restarts+1)
	require.Len(t, r.Lines(`got SIGHUP$`), restarts)
	// and the restarter is still up with the newest epoch, until SIGTERM.
	require.True(t, proctest.Alive(r.PID()))
	require.True(t, proctest.Alive(newest.PID))
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	require.Equal(t, "exited with code=0", sb.waitReaped(newest))
	sb.requireAllGone()
}

// Scenario 8: SIGHUP while the previous epoch is still initializing. By
// default the init gate sees Envoy's INITIALIZING flag and holds the SIGHUP
// until the epoch is done; with --init-gate off it takes Envoy's "previous
// envoy process is still initializing" path: the new epoch exits 1, and the
// restarter (hot-restarter.py's policy) kills the initializing epoch and
// exits 1.
func TestSIGHUPWhilePreviousEpochInitializing(t *testing.T) {
	t.Parallel()
	for _, gate := range []string{"auto", "off"} {
		t.Run("init-gate="+gate, func(t *testing.T) {
			t.Parallel()
			// Given epoch 0 still initializing (not LIVE for a long while),
			sb := newSandbox(t, `fakeenvoy --base-id "$BASE_ID" --fake-ready-delay 60s`+"\n")
			r := sb.start("--init-gate", gate)
			e0 := sb.waitForked(0)
			admin := r.WaitLine(epochLine(e0.PID, `admin address: (\S+)$`), 1, wait)[1]
			r.WaitLine(epochLine(e0.PID, `starting main dispatch loop$`), 1, wait)
			status, body := httpStatus(t, "http://"+admin+"/ready")
			require.Equal(t, 503, status)
			require.Equal(t, "INITIALIZING", body)

			// when the operator hot restarts,
			r.Signal(syscall.SIGHUP)

			if gate == "auto" {
				// then the SIGHUP waits for epoch 0's flag to clear,
				r.WaitLine(`epoch 0 is still initializing; SIGHUP queued for after it$`, 1, wait)
				require.Empty(t, r.Lines(`new child process at epoch 1`))
				// and SIGTERM stops epoch 0 cleanly.
				r.Signal(syscall.SIGTERM)
				require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
				require.Empty(t, r.Lines(`new child process at epoch 1`))
				sb.requireAllGone()
				return
			}
			// then epoch 1 refuses, as Envoy does, and exits 1,
			e1 := sb.waitForked(1)
			r.WaitLine(`^previous envoy process is still initializing$`, 1, wait)
			require.Equal(t, "exited with code=1", sb.waitReaped(e1))
			// and the restarter kills epoch 0 and exits 1.
			require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
			r.WaitLine(abnormalRE, 1, wait)
			require.Equal(t, "was killed with signal=9", sb.waitReaped(e0))
			sb.requireAllGone()
		})
	}
}

// Scenario 9: SIGHUP during shutdown starts no new epoch.
func TestSIGHUPDuringShutdownStartsNoEpoch(t *testing.T) {
	t.Parallel()
	// Given an epoch slow to stop (it ignores SIGTERM; SIGINT stops it),
	sb := newSandbox(t, `fakeenvoy --base-id "$BASE_ID" --fake-ignore-sigterm`+"\n")
	r := sb.start()
	e0, _ := sb.waitLive(0)
	r.Signal(syscall.SIGTERM)
	r.WaitLine(epochLine(e0.PID, `ignoring SIGTERM \(--fake-ignore-sigterm\)$`), 1, wait)

	// when SIGHUP arrives during the shutdown,
	r.Signal(syscall.SIGHUP)
	r.WaitLine(`ignoring SIGHUP: shutdown in progress$`, 1, wait)

	// then no epoch is started, and once epoch 0 stops the restarter exits 0.
	signal(t, e0.PID, syscall.SIGINT)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	require.Equal(t, "exited with code=0", sb.waitReaped(e0))
	r.WaitLine(`all children exited cleanly$`, 1, wait)
	require.Empty(t, r.Lines(`new child process at epoch 1`))
	require.Len(t, sb.forked(), 1)
	sb.requireAllGone()
}

// Scenario 13: a storm of 200 SIGHUPs in a second. The init gate queues
// and coalesces them (docs/DESIGN.md §2.3), but an epoch can still fail,
// here or during the stop (§2.5, §3.6), and the restarter then exits 1:
// what the storm must not break is the restarter itself: no crash, no
// zombie, no orphan, a bounded number of processes, a clean exit in
// bounded time.
func TestSIGHUPStorm(t *testing.T) {
	t.Parallel()
	// Given epoch 0 live,
	sb := newSandbox(t, "")
	r := sb.start()
	sb.waitLive(0)
	stopSampling := make(chan struct{})
	mostAlive := maxChildren(r.PID(), stopSampling)

	// when 200 SIGHUPs arrive within a second (every 5ms),
	tick := time.NewTicker(5 * time.Millisecond)
	sent := 0
	for ; sent < 200; sent++ {
		if syscall.Kill(r.PID(), syscall.SIGHUP) != nil {
			break // the restarter exited (after a failed epoch) and was reaped
		}
		<-tick.C
	}
	tick.Stop()
	// and then SIGTERM,
	began := time.Now()
	syscall.Kill(r.PID(), syscall.SIGTERM)

	// then the restarter ends by itself or on the TERM, in bounded time,
	exit := r.Wait(wait)
	close(stopSampling)
	require.Less(t, time.Since(began), 10*time.Second)
	require.Zero(t, exit.Signal, "the restarter crashed: %v", exit)
	require.Contains(t, []int{0, 1}, exit.Code)
	if exit.Code == 1 {
		// An epoch failed: while running (the abort) or during the stop (an
		// epoch whose parent exited at its parent-shutdown time while the
		// epoch shut down aborts its Terminate, as Envoy's would).
		r.WaitLine(abnormalRE+`|during the stop: the exit code will be 1$`, 1, wait)
	} else {
		r.WaitLine(`all children exited cleanly$`, 1, wait)
	}
	r.WaitLine(`exiting with code=`+strconv.Itoa(exit.Code)+`$`, 1, wait)
	// it reaped every epoch it started (each once) and none is left,
	sb.requireAllGone()
	// each SIGHUP it handled started at most one epoch, and none started
	// once shutdown began (the number of processes is bounded by that).
	hups := len(r.Lines(`got SIGHUP$`))
	require.Positive(t, hups)
	require.LessOrEqual(t, len(sb.forked()), 1+hups)
	shutdown := false
	for _, line := range strings.Split(r.Output(), "\n") {
		if regexp.MustCompile(abnormalRE + `|got SIGTERM$`).MatchString(line) {
			shutdown = true
		}
		require.False(t, shutdown && strings.Contains(line, "forking and execing new child process"), "epoch started during shutdown: %s", line)
	}
	t.Logf("%d SIGHUPs sent, %d handled, %d epochs started, at most %d alive at once, exit %d",
		sent, hups, len(sb.forked()), <-mostAlive, exit.Code)
}

// Envoy names its domain sockets base_id*10 + epoch%3: epoch 3 binds epoch
// 0's names and fails (errno=98) if epoch 0 is still exiting. The
// restarter holds the hot restart until epoch 0 is reaped.
func TestHotRestartHeldWhileEpochNMinus3Exits(t *testing.T) {
	t.Parallel()
	// Given epoch 0 slow to exit (it ignores the terminate its children send)
	// and epochs 1 and 2 started after it, epoch 1 gone,
	sb := newSandbox(t, `if [ "$RESTART_EPOCH" = 0 ]; then fakeenvoy --base-id "$BASE_ID" --fake-ignore-sigterm; fi
fakeenvoy --base-id "$BASE_ID"
`)
	r := sb.start()
	e0, _ := sb.waitLive(0)
	r.Signal(syscall.SIGHUP)
	sb.waitLive(1)
	r.Signal(syscall.SIGHUP)
	e2, _ := sb.waitLive(2)
	require.Equal(t, "exited with code=0", sb.waitReaped(sb.forked()[1]))
	r.WaitLine(epochLine(e0.PID, `ignoring SIGTERM \(--fake-ignore-sigterm\)$`), 1, wait)
	require.True(t, proctest.Alive(e0.PID), "epoch 0 still exiting")

	// when a hot restart is asked for, and asked again,
	r.Signal(syscall.SIGHUP)
	r.WaitLine(`holding hot restart to epoch 3: epoch 0 \(PID=`+strconv.Itoa(e0.PID)+`\) is still exiting$`, 1, wait)
	r.Signal(syscall.SIGHUP)
	r.WaitLine(`got SIGHUP$`, 4, wait)
	require.Empty(t, r.Lines(`forking and execing new child process at epoch 3$`), "epoch 3 forked while epoch 0 holds its sockets")

	// then epoch 3 starts once epoch 0 is gone, binds its sockets, and takes over
	// from epoch 2; the two SIGHUPs made one restart, logged held once.
	signal(t, e0.PID, syscall.SIGINT)
	require.Equal(t, "exited with code=0", sb.waitReaped(e0))
	sb.waitLive(3)
	require.Equal(t, "exited with code=0", sb.waitReaped(e2))
	require.Empty(t, r.Lines(`unable to bind domain socket`))
	require.Len(t, r.Lines(`holding hot restart to epoch 3`), 1)
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	require.Len(t, sb.forked(), 4)
	sb.requireAllGone()
}

// requireGrandparentsTold checks, from the log, Envoy's bound on live
// epochs: when epoch n starts it asks its parent to shut down its admin, and
// the parent then tells ITS parent to terminate. So by the time the
// restarter forks epoch n (after epoch n-1 went live), every epoch up to
// n-3 has been told, and at most two older epochs (n-1, n-2) have not. An
// epoch counts as told once its child logged "terminating parent process"
// or it logged "shutting down due to child request" itself. (Being told is
// what Envoy promises; a told epoch may still be alive for a moment while
// it exits, so this is no /proc count.) The lines of all processes share
// one pipe, so their order is the order of the writes, and each process
// logs before it acts.
func requireGrandparentsTold(t *testing.T, output string, epochs []epoch) {
	t.Helper()
	epochOf := map[string]int{}
	for _, e := range epochs {
		epochOf[strconv.Itoa(e.PID)] = e.N
	}
	forking := regexp.MustCompile(`\[restarter\] forking and execing new child process at epoch (\d+)$`)
	fromEpoch := regexp.MustCompile(`^\[[^]]+\]\[(\d+)\]\[[a-z]+\]\[[a-z]+\] \[[^]]+\] (terminating parent process|shutting down due to child request)$`)
	told := map[int]bool{}
	forks := 0
	for _, line := range strings.Split(output, "\n") {
		if m := fromEpoch.FindStringSubmatch(line); m != nil {
			n, ok := epochOf[m[1]]
			require.True(t, ok, "log line of a process that is no epoch: %s", line)
			if m[2] == "terminating parent process" {
				told[n-1] = true
			} else {
				told[n] = true
			}
			continue
		}
		if m := forking.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			var untold []int
			for k := range n {
				if !told[k] {
					untold = append(untold, k)
				}
			}
			require.LessOrEqual(t, len(untold), 2, "forking epoch %d, epochs %v not yet told to terminate", n, untold)
			forks++
		}
	}
	require.Equal(t, len(epochs), forks, "forks seen in the log")
}
