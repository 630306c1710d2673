package integration

import (
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// dynamicBaseIDBody follows Envoy's docs for dynamic base ids: epoch 0 picks
// one (--use-dynamic-base-id) and writes it to a file (--base-id-path);
// later epochs cannot use --use-dynamic-base-id and pass the file's id as
// --base-id. Every epoch uses Envoy's default socket path, which all
// Envoys on a host share: that is where a dynamic id's collision shows.
const dynamicBaseIDBody = `if [ "$RESTART_EPOCH" -eq 0 ]; then
	rm -f "$DIR/base-id"
	fakeenvoy --socket-path @envoy_domain_socket --use-dynamic-base-id --base-id-path "$DIR/base-id"
else
	fakeenvoy --socket-path @envoy_domain_socket --base-id "$(cat "$DIR/base-id")"
fi
`

// Scenario 4: epoch 0 with a dynamic base id, later epochs with that id
// read back from the file, hot restart as with a static one.
func TestDynamicBaseIDThroughAFile(t *testing.T) {
	t.Parallel()
	// Given a start script that follows Envoy's rule for dynamic base ids
	// (and old epochs given the time to lose no request, as in
	// TestHotRestartUnderLoad),
	sb := newSandboxWith(t, dynamicBaseIDBody, losslessParentShutdownTime)
	r := sb.start()

	// when epoch 0 starts, then it picked an id and wrote it, decimal, no newline,
	_, st0 := sb.waitLive(0)
	id := readBaseID(t, sb.Path("base-id"))
	require.Equal(t, id, st0.BaseID)
	require.LessOrEqual(t, id, uint32(0x0FFFFFFF), "a dynamic id is masked as Envoy masks it")
	r.WaitLine(`initializing epoch 0 \(base id=`+strconv.FormatUint(uint64(id), 10)+`,`, 1, wait)

	// and when it is hot restarted twice, each epoch runs with that id and
	// takes over from its parent.
	// (Each SIGHUP once the epoch it would terminate has exited on its own.)
	clients := fakeenvoytest.StartLoad(t, sb.addr(), 2)
	for n := 1; n <= 2; n++ {
		if n >= 2 {
			sb.waitReaped(sb.forked()[n-2])
		}
		r.Signal(syscall.SIGHUP)
		_, st := sb.waitLive(n)
		require.Equal(t, id, st.BaseID, "epoch %d base id", n)
		proctest.WaitFor(t, wait, "epoch "+strconv.Itoa(n)+" to answer", func() bool { return clients.Served(n) > 0 })
	}
	epochs := sb.forked()
	for _, e := range epochs[:2] {
		require.Equal(t, "exited with code=0", sb.waitReaped(e), "epoch %d", e.N)
	}
	clients.Finish()
	require.Empty(t, clients.Failed())
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	sb.requireAllGone()
}

// Scenario 4: restarters on one host, each with a dynamic base id and the
// same (Envoy's default) socket path, get different ids and each hot
// restarts within its own instance.
func TestDynamicBaseIDsNeverCollide(t *testing.T) {
	t.Parallel()
	const instances = 3
	// Given three restarters started at once, each with dynamic base ids,
	var sandboxes []*sandbox
	for range instances {
		sb := newSandbox(t, dynamicBaseIDBody)
		sb.start()
		sandboxes = append(sandboxes, sb)
	}
	// when each epoch 0 is live, then their ids differ,
	ids := map[uint32]bool{}
	for _, sb := range sandboxes {
		_, st := sb.waitLive(0)
		require.Equal(t, readBaseID(t, sb.Path("base-id")), st.BaseID)
		require.False(t, ids[st.BaseID], "base id %d chosen twice", st.BaseID)
		ids[st.BaseID] = true
	}
	// and a hot restart of each hands its listener to its own next epoch.
	for _, sb := range sandboxes {
		sb.restarter.Signal(syscall.SIGHUP)
	}
	// (Epoch 0 may accept connections until it has processed its child's
	// drain request, which is not answered: Envoy promises the hand-off of
	// the socket, and that the old epoch stops once told, so the listener is
	// asked for epoch 1 once epoch 0 is gone.)
	for _, sb := range sandboxes {
		e1, st := sb.waitLive(1)
		require.True(t, ids[st.BaseID])
		require.Equal(t, readBaseID(t, sb.Path("base-id")), st.BaseID)
		sb.restarter.WaitLine(epochLine(e1.PID, `listener 'web' on `+regexp.QuoteMeta(sb.addr())+` \(from parent\)$`), 1, wait)
		require.Equal(t, "exited with code=0", sb.waitReaped(sb.forked()[0]))
		require.Contains(t, httpGet(t, "http://"+sb.addr()+"/"), "fakeenvoy epoch=1 pid="+strconv.Itoa(e1.PID))
	}
	for _, sb := range sandboxes {
		sb.restarter.Signal(syscall.SIGTERM)
	}
	for _, sb := range sandboxes {
		require.Equal(t, proctest.Exit{Code: 0}, sb.restarter.Wait(wait))
		sb.requireAllGone()
	}
}

// Scenario 4: --use-dynamic-base-id at an epoch above 0 fails as in Envoy,
// and the restarter treats it as any failed epoch.
func TestDynamicBaseIDAtLaterEpochFails(t *testing.T) {
	t.Parallel()
	// Given a start script that (wrongly) asks for a dynamic id at every epoch,
	sb := newSandbox(t, `fakeenvoy --use-dynamic-base-id --base-id-path "$DIR/base-id"`+"\n")
	r := sb.start()
	e0, _ := sb.waitLive(0)

	// when it is hot restarted,
	r.Signal(syscall.SIGHUP)

	// then epoch 1 refuses to start, exit 1, with Envoy's message,
	e1 := sb.waitForked(1)
	r.WaitLine(`^error: cannot use --restart-epoch=1 with --use-dynamic-base-id$`, 1, wait)
	require.Equal(t, "exited with code=1", sb.waitReaped(e1))
	// and the restarter kills epoch 0 and exits 1.
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	r.WaitLine(abnormalRE, 1, wait)
	r.WaitLine(`force killing PID=`+strconv.Itoa(e0.PID)+`$`, 1, wait)
	require.Equal(t, "was killed with signal=9", sb.waitReaped(e0))
	sb.requireAllGone()
}

// readBaseID reads a --base-id-path file: the id, decimal, no newline.
func readBaseID(t *testing.T, path string) uint32 {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	id, err := strconv.ParseUint(string(b), 10, 32)
	require.NoError(t, err, "base id file %q", b)
	return uint32(id)
}
