package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/server"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// The endpoints of a graceful stop: /healthcheck/fail and ok,
// /drain_listeners and /reopen_logs, each against a running fakeenvoy.

// gracefulDoc is a bootstrap with an admin and three listeners on
// kernel-chosen ports, each answering "NAME\n" and logging to accessLog:
// "in" (traffic_direction INBOUND, with a health check filter on
// /healthz), "out" (OUTBOUND) and "keep" (drain_type MODIFY_ONLY).
func gracefulDoc(accessLog string) string {
	listener := func(name, extra, filters string) string {
		return fmt.Sprintf(`  - name: %[1]s
%[2]s    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: %[1]s
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: %[4]q
          route_config:
            virtual_hosts:
            - name: %[1]s
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_string: "%[1]s\n"}}
          http_filters:
%[3]s          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`, name, extra, filters, accessLog)
	}
	healthCheck := `          - name: envoy.filters.http.health_check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck
              pass_through_mode: false
              headers: [{name: ":path", string_match: {exact: "/healthz"}}]
`
	return "admin:\n  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\nstatic_resources:\n  listeners:\n" +
		listener("in", "    traffic_direction: INBOUND\n", healthCheck) +
		listener("out", "    traffic_direction: OUTBOUND\n", "") +
		listener("keep", "    drain_type: MODIFY_ONLY\n", "")
}

// gracefulEpoch starts epoch 0 on gracefulDoc with args and returns it
// with its state file once it is fully up.
func (sb *sandbox) gracefulEpoch(args ...string) (*proctest.Proc, server.State) {
	sb.t.Helper()
	p, st := sb.gracefulLive(args...)
	p.WaitLine(startedLine, 1, wait)
	return p, st
}

// gracefulLive starts epoch 0 on gracefulDoc with args and returns it with
// its state file once it is LIVE (for a --log-path run, whose lines go to
// the file).
func (sb *sandbox) gracefulLive(args ...string) (*proctest.Proc, server.State) {
	sb.t.Helper()
	cfg := sb.Path("graceful.yaml")
	require.NoError(sb.t, os.WriteFile(cfg, []byte(gracefulDoc(sb.Path("access.log"))), 0o644))
	p := sb.start(0, append([]string{"-c", cfg, "--fake-state-path", sb.Path("s0.json")}, args...)...)
	return p, readState(sb.t, sb.Path("s0.json"), 0)
}

// once sends one request over a connection of its own.
func once(t *testing.T, addr, method, path string) (*http.Response, string) {
	t.Helper()
	k := dialKeepAlive(t, addr)
	defer k.conn.Close()
	return k.do(t, method, path)
}

// refused says whether a new connection to addr is refused.
func refused(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// Mirrors source/server/admin/server_cmd_handler.cc (handlerHealthcheckFail,
// handlerHealthcheckOk: InstanceImpl::failHealthcheck in
// source/server/server.cc, which sets server.live), the admin's refusal of
// a mutating GET (AdminImpl::makeRequest, source/server/admin/admin.cc),
// serverState (INITIALIZING, then DRAINING while failed, else LIVE) as
// /ready and /server_info (source/server/admin/server_info_handler.cc) and
// server.state at each stats flush (InstanceImpl::updateServerStats)
// report it, the health check filter
// (source/extensions/filters/http/health_check/health_check.cc), and the
// drain decision (source/server/drain_manager_impl.cc drainClose: a failed
// health check closes a DEFAULT listener's connections, not a MODIFY_ONLY
// one's, nor the admin's, whose manager is the server's MODIFY_ONLY one)
// that makes HTTP/1 replies carry connection: close
// (source/common/http/conn_manager_impl.cc).
func TestHealthcheckFailAndOk(t *testing.T) {
	sb := newSandbox(t)
	e0, st := sb.gracefulEpoch("--service-cluster", "svc", "--fake-stats-flush-interval", "50ms")
	admin := "http://" + st.AdminAddress

	code, body := get(t, admin+"/healthcheck/fail")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	assert.Equal(t, "Method GET not allowed, POST required.", body)
	e0.WaitLine(regexp.QuoteMeta(`[error][admin]`)+`.* `+regexp.QuoteMeta(`admin path "/healthcheck/fail" mutates state, method=GET rather than POST`), 1, wait)
	code, _ = get(t, admin+"/ready")
	assert.Equal(t, http.StatusOK, code, "a GET changes nothing")

	in, keep, adm := dialKeepAlive(t, st.Listeners["in"]), dialKeepAlive(t, st.Listeners["keep"]), dialKeepAlive(t, st.AdminAddress)
	for _, k := range []*keepAlive{in, keep, adm} {
		resp, _ := k.do(t, http.MethodGet, "/ready")
		require.False(t, resp.Close)
	}

	code, body = do(t, http.MethodPost, admin+"/healthcheck/fail", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "OK\n", body)
	code, body = get(t, admin+"/ready")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "DRAINING\n", body)
	_, body = get(t, admin+"/server_info")
	assert.Equal(t, "DRAINING", parseServerInfo(t, body).State)
	assert.Equal(t, uint64(0), stat(t, st.AdminAddress, "server.live"), "set at once")
	waitStat(t, st.AdminAddress, "server.state", 1) // at the next stats flush

	resp, body := in.do(t, http.MethodGet, "/healthz")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "the health check filter fails the health check")
	assert.Equal(t, "svc", resp.Header.Get("x-envoy-upstream-healthchecked-cluster"))
	assert.True(t, strings.HasPrefix(body, "fakeenvoy epoch=0 "), "a local reply: %q", body)
	assert.True(t, resp.Close, "a DEFAULT listener drain-closes at once")
	in.closedByPeer(t)
	resp, body = once(t, st.Listeners["in"], http.MethodGet, "/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, strings.HasPrefix(body, "in\n"))
	assert.Equal(t, "true", resp.Header.Get("x-envoy-immediate-health-check-fail"))
	assert.True(t, resp.Close)
	resp, _ = once(t, st.Listeners["out"], http.MethodGet, "/")
	assert.True(t, resp.Close, "every DEFAULT listener")
	assert.Empty(t, resp.Header.Get("x-envoy-immediate-health-check-fail"), "only where the health check filter is")
	resp, _ = keep.do(t, http.MethodGet, "/")
	assert.False(t, resp.Close, "MODIFY_ONLY: not on a failed health check")
	resp, body = adm.do(t, http.MethodGet, "/ready")
	assert.Equal(t, "DRAINING\n", body)
	assert.False(t, resp.Close, "the admin is MODIFY_ONLY")

	code, body = do(t, http.MethodPost, admin+"/healthcheck/ok", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "OK\n", body)
	code, body = get(t, admin+"/ready")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "LIVE\n", body)
	_, body = get(t, admin+"/server_info")
	assert.Equal(t, "LIVE", parseServerInfo(t, body).State)
	assert.Equal(t, uint64(1), stat(t, st.AdminAddress, "server.live"))
	waitStat(t, st.AdminAddress, "server.state", 0)
	resp, _ = once(t, st.Listeners["in"], http.MethodGet, "/healthz")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "svc", resp.Header.Get("x-envoy-upstream-healthchecked-cluster"))
	assert.False(t, resp.Close)
	resp, _ = once(t, st.Listeners["in"], http.MethodGet, "/")
	assert.Empty(t, resp.Header.Get("x-envoy-immediate-health-check-fail"))
	assert.False(t, resp.Close)

	e0.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
	log, err := os.ReadFile(sb.Path("access.log"))
	require.NoError(t, err)
	assert.Contains(t, string(log), `"GET /healthz HTTP/1.1" 503 LH `, "Envoy's FailedLocalHealthCheck flag")
	assert.Contains(t, string(log), `"GET /healthz HTTP/1.1" 200 - `)
}

// Mirrors source/server/admin/listeners_handler.cc handlerDrainListeners
// (graceful: a drain sequence over the drain time, the listeners stopped
// when it is over; without it, stopped at once; a graceful drain already
// under way is left alone), source/server/drain_manager_impl.cc
// (startDrainSequence, drainClose with --drain-strategy immediate) and
// ListenerManagerImpl::stopListeners: a stopped listener refuses new
// connections and serves the ones it has.
func TestDrainListenersGraceful(t *testing.T) {
	sb := newSandbox(t)
	e0, st := sb.gracefulEpoch("--drain-strategy", "immediate", "--fake-drain-time", "1h")
	admin := "http://" + st.AdminAddress
	out := dialKeepAlive(t, st.Listeners["out"])
	resp, _ := out.do(t, http.MethodGet, "/")
	require.False(t, resp.Close)

	code, _ := get(t, admin+"/drain_listeners?graceful")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	code, body := do(t, http.MethodPost, admin+"/drain_listeners?graceful", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "OK\n", body)
	resp, _ = out.do(t, http.MethodGet, "/")
	assert.True(t, resp.Close, "the open connection is drain-closed")
	out.closedByPeer(t)
	for _, name := range []string{"in", "out", "keep"} {
		resp, body = once(t, st.Listeners[name], http.MethodGet, "/")
		assert.True(t, strings.HasPrefix(body, name+"\n"), "new connections are accepted during the drain time: %q", body)
		assert.True(t, resp.Close, "and drain-closed")
	}
	code, body = get(t, admin+"/ready")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "LIVE\n", body, "a drain is no failed health check")
	code, _ = do(t, http.MethodPost, admin+"/drain_listeners?graceful", "")
	assert.Equal(t, http.StatusOK, code, "a drain under way is left alone")

	code, _ = do(t, http.MethodPost, admin+"/drain_listeners", "")
	assert.Equal(t, http.StatusOK, code)
	for _, name := range []string{"in", "out", "keep"} {
		assert.True(t, refused(st.Listeners[name]), "%s is stopped at once", name)
	}
	assert.True(t, e0.Alive(), "a drain never exits")
}

// The same, with a drain time short enough to see it end: graceful stops
// the listeners then.
func TestDrainListenersGracefulStopsAtTheEnd(t *testing.T) {
	sb := newSandbox(t)
	e0, st := sb.gracefulEpoch("--fake-drain-time", "200ms")
	code, _ := do(t, http.MethodPost, "http://"+st.AdminAddress+"/drain_listeners?graceful", "")
	assert.Equal(t, http.StatusOK, code)
	proctest.WaitFor(t, wait, "the listeners stopped after the drain time", func() bool {
		return refused(st.Listeners["in"]) && refused(st.Listeners["out"]) && refused(st.Listeners["keep"])
	})
	assert.True(t, e0.Alive(), "a drain never exits")
}

// Mirrors source/server/admin/listeners_handler.cc handlerDrainListeners
// with inboundonly (StopListenersType::InboundOnly and
// DrainDirection::InboundOnly), ListenerManagerImpl::stopListeners (INBOUND
// listeners only) and source/server/drain_manager_impl.cc drainClose (a
// drain of InboundOnly leaves other listeners' connections alone; a later
// drain of All covers them), with the parameters read from a form body
// when the URL has none (AdminFilter::queryParams,
// source/server/admin/admin_filter.cc).
func TestDrainListenersInboundOnly(t *testing.T) {
	sb := newSandbox(t)
	e0, st := sb.gracefulEpoch("--drain-strategy", "immediate", "--fake-drain-time", "1h")
	admin := "http://" + st.AdminAddress
	in, out, adm := dialKeepAlive(t, st.Listeners["in"]), dialKeepAlive(t, st.Listeners["out"]), dialKeepAlive(t, st.AdminAddress)
	for _, k := range []*keepAlive{in, out, adm} {
		resp, _ := k.do(t, http.MethodGet, "/ready")
		require.False(t, resp.Close)
	}

	code, _ := do(t, http.MethodPost, admin+"/drain_listeners?inboundonly", "")
	assert.Equal(t, http.StatusOK, code)
	assert.True(t, refused(st.Listeners["in"]), "the INBOUND listener is stopped")
	assert.False(t, refused(st.Listeners["out"]))
	assert.False(t, refused(st.Listeners["keep"]))
	resp, body := in.do(t, http.MethodGet, "/")
	assert.True(t, strings.HasPrefix(body, "in\n"), "the stopped listener serves its open connection: %q", body)
	assert.True(t, resp.Close, "and drain-closes it")
	resp, _ = out.do(t, http.MethodGet, "/")
	assert.False(t, resp.Close, "OUTBOUND connections are not drained")
	resp, _ = adm.do(t, http.MethodGet, "/ready")
	assert.False(t, resp.Close, "nor the admin's")

	// graceful in a form body: a drain of All, the listeners accepting
	// until its end.
	req, err := http.NewRequest(http.MethodPost, admin+"/drain_listeners", strings.NewReader("graceful"))
	require.NoError(t, err)
	req.Header.Set("content-type", "application/x-www-form-urlencoded")
	r, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusOK, r.StatusCode)
	resp, _ = out.do(t, http.MethodGet, "/")
	assert.True(t, resp.Close, "a drain of All covers OUTBOUND listeners")
	resp, _ = adm.do(t, http.MethodGet, "/ready")
	assert.True(t, resp.Close, "and the admin")
	assert.False(t, refused(st.Listeners["out"]), "accepting until the drain time is over")
	assert.True(t, e0.Alive())
}

// Mirrors source/server/server.cc InstanceImpl::updateServerStats
// (server.total_connections: the listeners' connections, stopped listeners
// included, plus the parent's; server.parent_connections) and
// HotRestartingParent's stats reply (the parent's connection count,
// source/server/hot_restarting_parent.cc): connections a drained listener
// still holds count until they close, in the epoch and, after a hot
// restart, in its child's parent_connections.
func TestConnectionStatsThroughDrainListeners(t *testing.T) {
	sb := newSandbox(t)
	_, st := sb.gracefulEpoch("--drain-strategy", "immediate", "--fake-stats-flush-interval", "50ms")
	a, b := dialKeepAlive(t, st.Listeners["out"]), dialKeepAlive(t, st.Listeners["out"])
	for _, k := range []*keepAlive{a, b} {
		k.do(t, http.MethodGet, "/")
	}
	waitStat(t, st.AdminAddress, "server.total_connections", 2)

	code, _ := do(t, http.MethodPost, "http://"+st.AdminAddress+"/drain_listeners", "")
	require.Equal(t, http.StatusOK, code)
	require.True(t, refused(st.Listeners["out"]))
	resp, _ := a.do(t, http.MethodGet, "/")
	require.True(t, resp.Close)
	a.closedByPeer(t)
	waitStat(t, st.AdminAddress, "server.total_connections", 1)

	// Epoch 1 binds sockets of its own (the stopped ones are closed) and
	// counts epoch 0's last connection as its parent's.
	cfg := sb.Path("graceful.yaml")
	e1 := sb.start(1, "-c", cfg, "--fake-state-path", sb.Path("s1.json"), "--fake-stats-flush-interval", "50ms", "--fake-parent-shutdown-time", "1h")
	st1 := readState(t, sb.Path("s1.json"), 1)
	e1.WaitLine(startedLine, 1, wait)
	waitStat(t, st1.AdminAddress, "server.parent_connections", 1)
	resp, _ = b.do(t, http.MethodGet, "/")
	assert.True(t, resp.Close)
	b.closedByPeer(t)
	waitStat(t, st1.AdminAddress, "server.parent_connections", 0)
	// As in Envoy, the total also holds the parent's own total gauge, as
	// of its last stats flush: the parent stopped flushing at
	// ShutdownAdmin, with one connection open.
	waitStat(t, st1.AdminAddress, "server.total_connections", 1)
}

// Mirrors source/server/admin/logs_handler.cc handlerReopenLogs: the access
// log manager reopens every file it writes, the access logs and the
// --log-path log alike, as SIGUSR1 does (RunHelper in
// source/server/server.cc), without SIGUSR1's log line. The reopen comes
// at each file's next flush (source/common/access_log/
// access_log_manager_impl.cc flushThreadFunc): lines the flusher has taken
// go to the file open then, lines still buffered go to the new one. The
// flush timer is an hour away.
//
// Which lines are still buffered at the reopen is a race in Envoy too: a
// flusher that has just written loops round and takes whatever came
// meanwhile before it waits. The test makes it certain by holding
// access_log_lock_, which every write to disk takes: the flusher waits
// for it holding the first line, and the next one stays buffered.
func TestReopenLogsTakesBufferedLinesToTheNewFile(t *testing.T) {
	sb := newSandbox(t)
	e0, st := sb.gracefulLive("--file-flush-interval-msec", "3600000")
	admin := "http://" + st.AdminAddress
	// Given the access log's flusher waiting for the lock with /first,
	lock := sb.holdAccessLogLock()
	once(t, st.Listeners["out"], http.MethodGet, "/first")
	proctest.WaitFor(t, wait, "the flusher waiting for access_log_lock_ with /first", lock.waiters)
	// and /buffered in its buffer,
	once(t, st.Listeners["out"], http.MethodGet, "/buffered")
	// when the file is moved and the logs are reopened (by POST only),
	code, _ := get(t, admin+"/reopen_logs")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	require.NoError(t, os.Rename(sb.Path("access.log"), sb.Path("access.log.1")))
	code, body := do(t, http.MethodPost, admin+"/reopen_logs", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "OK\n", body)
	lock.Unlock()
	once(t, st.Listeners["out"], http.MethodGet, "/after")
	e0.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))

	// then the line taken went to the moved file, the buffered one and
	// every later one to the new file.
	moved, err := os.ReadFile(sb.Path("access.log.1"))
	require.NoError(t, err)
	current, err := os.ReadFile(sb.Path("access.log"))
	require.NoError(t, err)
	assert.Contains(t, string(moved), `"GET /first HTTP/1.1"`)
	assert.NotContains(t, string(moved), `"GET /buffered HTTP/1.1"`)
	assert.NotContains(t, string(current), `"GET /first HTTP/1.1"`)
	assert.Contains(t, string(current), `"GET /buffered HTTP/1.1"`, "buffered before the reopen, written after it")
	assert.Contains(t, string(current), `"GET /after HTTP/1.1"`)
}

// The --log-path log is reopened by /reopen_logs too; a line logged
// around the reopen is in one of the two files, once.
func TestReopenLogsReopensTheLogPath(t *testing.T) {
	sb := newSandbox(t)
	logPath := sb.Path("envoy.log")
	e0, st := sb.gracefulLive("--log-path", logPath, "--file-flush-interval-msec", "3600000")
	admin := "http://" + st.AdminAddress
	proctest.WaitFor(t, wait, "the log's first line on disk", fileHas(logPath, "initializing epoch 0"))
	code, _ := get(t, admin+"/reopen_logs")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	require.NoError(t, os.Rename(logPath, logPath+".1"))
	code, _ = do(t, http.MethodPost, admin+"/reopen_logs", "")
	assert.Equal(t, http.StatusOK, code)
	e0.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))

	log, err := os.ReadFile(logPath)
	require.NoError(t, err)
	oldLog, err := os.ReadFile(logPath + ".1")
	require.NoError(t, err)
	assert.Contains(t, string(oldLog), "initializing epoch 0")
	assert.Contains(t, string(log), "exiting", "the log reopened")
	assert.NotContains(t, string(oldLog)+string(log), "caught SIGUSR1", "no SIGUSR1 line for /reopen_logs")
	const mutates = `admin path "/reopen_logs" mutates state, method=GET rather than POST`
	assert.Equal(t, 1, strings.Count(string(log)+string(oldLog), mutates), "logged once, in one of the files")
}

// Mirrors source/server/admin/admin.cc createNetworkFilterChain, which
// gives the admin's connection manager the server's drain manager: once a
// hot restart child tells the parent to drain, the parent's admin replies
// on connections kept from before ShutdownAdmin drain-close too
// (source/common/http/conn_manager_impl.cc, --drain-strategy immediate).
func TestHeldAdminConnectionDrainsWithTheServer(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.start(0, "-c", cfg, "--fake-state-path", sb.Path("s0.json"), "--drain-strategy", "immediate", "--fake-drain-time", "1h")
	st0 := readState(t, sb.Path("s0.json"), 0)
	e0.WaitLine(startedLine, 1, wait)
	held := dialKeepAlive(t, st0.AdminAddress)
	resp, _ := held.do(t, http.MethodGet, "/ready")
	require.False(t, resp.Close)

	sb.start(1, "-c", cfg, "--fake-parent-shutdown-time", "1h")
	e0.WaitLine("closing and draining listeners", 1, wait)
	resp, body := held.do(t, http.MethodGet, "/server_info")
	assert.Equal(t, uint32(0), parseServerInfo(t, body).CommandLineOptions.RestartEpoch, "answered by epoch 0")
	assert.True(t, resp.Close, "drain-closed")
	held.closedByPeer(t)
}
