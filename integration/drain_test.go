package integration

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Issue 22, item 3: a stop with --stop-drain first fails Envoy's health
// check and drains its listeners through the admin; with nothing
// connected, it stops as soon as the connections are zero, not after the
// whole --stop-drain.
func TestStopDrainEndsWhenNoConnectionIsLeft(t *testing.T) {
	t.Parallel()
	sb := newSafeSandbox(t, "")
	r := sb.start("--stop-drain", "10m", "--admin-url", "http://127.0.0.1:"+strconv.Itoa(sb.adminPort))
	e0, _ := sb.waitLive(0)

	r.Signal(syscall.SIGTERM)

	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	r.WaitLine(`draining Envoy's connections before stopping: failing its health check, draining its listeners, for at most --stop-drain=10m0s$`, 1, wait)
	r.WaitLine(`no connection left: stopping$`, 1, wait)
	r.WaitLine(`sending TERM to PID=`+strconv.Itoa(e0.PID)+`$`, 1, wait)
	require.Empty(t, r.Lines(`--stop-drain=10m0s passed`))
	sb.requireAllGone()
}

// During the drain Envoy's /ready says DRAINING; 16 looping clients are
// answered, none reset (Envoy's own drain time is long here: its listeners
// accept until it stops); a kept-alive connection holds the drain open and
// is told to close at its next answer; then the stop proper follows at once.
func TestStopDrainUnderLoad(t *testing.T) {
	t.Parallel()
	sb := newSafeSandbox(t, `fakeenvoy --base-id "$BASE_ID" --fake-drain-time 10m`+"\n")
	admin := "http://127.0.0.1:" + strconv.Itoa(sb.adminPort)
	r := sb.start("--stop-drain", "10m", "--admin-url", admin)
	sb.waitLive(0)
	keepAlive := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(keepAlive.CloseIdleConnections)
	get := func() *http.Response {
		resp, err := keepAlive.Get("http://" + sb.addr() + "/")
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	require.False(t, get().Close, "kept alive before the stop")

	// When the restarter is stopped,
	r.Signal(syscall.SIGTERM)
	r.WaitLine(`draining Envoy's connections before stopping`, 1, wait)

	// then Envoy reports DRAINING,
	proctest.WaitFor(t, wait, "/ready DRAINING", func() bool {
		code, body := httpStatus(t, admin+"/ready")
		return code == http.StatusServiceUnavailable && strings.TrimSpace(body) == "DRAINING"
	})
	// 16 looping clients are answered meanwhile, none reset,
	clients := fakeenvoytest.StartLoad(t, sb.addr(), 16)
	proctest.WaitFor(t, wait, "requests answered while draining", func() bool { return len(clients.Answered()) >= 200 })
	clients.Finish()
	require.Empty(t, clients.Failed(), "requests failed while draining")
	// the kept-alive connection holds the drain open until it is told to close,
	require.True(t, r.Alive(), "still draining: a connection is open")
	require.Empty(t, r.Lines(`sending TERM`))
	require.True(t, get().Close, "connection: close while draining")

	// and, no connection left, the stop follows.
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	r.WaitLine(`no connection left: stopping$`, 1, wait)
	sb.requireAllGone()
}

// Bad input: --stop-drain without --admin-url is a usage error.
func TestStopDrainNeedsAdminURL(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	code, out := runRestarter(t, "--stop-drain", "5s", sb.script)
	require.Equal(t, 2, code, out)
	require.Equal(t, "restarter: flag -stop-drain needs -admin-url: the drain goes through Envoy's admin\n", out)
}
