package integration

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Scenario 2: twenty hot restarts under load lose no request.
func TestHotRestartUnderLoad(t *testing.T) {
	const restarts = 20
	t.Parallel()
	// Given epoch 0 serving and clients hammering its listener,
	sb := newSandbox(t, "")
	r := sb.start()
	sb.waitLive(0)
	clients := startLoad(t, sb.addr(), 4)
	stopSampling := make(chan struct{})
	mostAlive := maxChildren(r.PID(), stopSampling)
	proctest.WaitFor(t, wait, "epoch 0 to answer", func() bool { return clients.served(0) > 0 })

	// when the restarter gets SIGHUP twenty times, each once the newest
	// epoch is live and has answered requests,
	var last time.Time
	for n := 1; n <= restarts; n++ {
		r.Signal(syscall.SIGHUP)
		sb.waitLive(n)
		last = time.Now()
		proctest.WaitFor(t, wait, "epoch "+strconv.Itoa(n)+" to answer", func() bool { return clients.served(n) > 0 })
	}
	epochs := sb.forked()
	previous := epochs[restarts-1]
	sb.waitReaped(previous)
	lastParentGone := time.Since(last)
	clients.finish()
	close(stopSampling)

	// then no request failed and every epoch answered some,
	require.Empty(t, clients.failed(), "failed requests")
	for n := 0; n <= restarts; n++ {
		require.Positive(t, clients.served(n), "epoch %d answered no request", n)
	}
	// every old epoch drained and exited 0, the last one only after its
	// child's parent-shutdown time (the others earlier: each new epoch
	// terminates its grandparent at once),
	for _, e := range epochs[:restarts] {
		require.Equal(t, "exited with code=0", sb.waitReaped(e), "epoch %d", e.N)
		r.WaitLine(epochLine(e.PID, `closing and draining listeners$`), 1, wait)
		r.WaitLine(epochLine(e.PID, `shutting down due to child request$`), 1, wait)
	}
	require.GreaterOrEqual(t, lastParentGone, parentShutdownTime, "epoch %d exited before its parent-shutdown time", previous.N)
	// never more than three epochs were alive at once,
	require.LessOrEqual(t, <-mostAlive, 3, "epochs alive at once")
	require.Len(t, epochs, restarts+1)
	require.Len(t, r.Lines(`got SIGHUP$`), restarts)
	// and the restarter is still up with the newest epoch, until SIGTERM.
	newest := epochs[restarts]
	require.True(t, proctest.Alive(r.PID()))
	require.True(t, proctest.Alive(newest.PID))
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	require.Equal(t, "exited with code=0", sb.waitReaped(newest))
	sb.requireAllGone()
}
