package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// orphanedChild starts epochs 0 and 1 (epoch 1 with a long parent
// shutdown time, fast retries, and the stats flush interval given), then
// SIGKILLs epoch 0: epoch 1 is LIVE with a dead parent it has not yet
// terminated.
func orphanedChild(sb *sandbox, statsFlush string) *proctest.Proc {
	sb.t.Helper()
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRunning(0, "-c", cfg)
	e1 := sb.startRunning(1, "-c", cfg, "--fake-parent-shutdown-time", "1h",
		"--fake-stats-flush-interval", statsFlush, "--fake-hot-restart-retry-delay", "5ms")
	e0.Signal(syscall.SIGKILL)
	e0.Wait(wait)
	return e1
}

// assertAbortedAfterRetries checks Envoy's end for a refused message to
// the parent: ten retries, the assert, SIGABRT.
func assertAbortedAfterRetries(t *testing.T, p *proctest.Proc) {
	t.Helper()
	assert.Equal(t, proctest.Exit{Signal: syscall.SIGABRT}, p.Wait(wait))
	out := p.Output()
	assert.Equal(t, 10, strings.Count(out, "hot restart sendmsg() connection refused, retrying"))
	assert.Contains(t, out, "hot restart sendmsg() failed: returned -1, errno 111")
}

// rawGet sends one request line by hand and returns the whole reply,
// read until the server closes the connection.
func rawGet(t *testing.T, addr, path, proto string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(wait)))
	_, err = fmt.Fprintf(conn, "GET %s %s\r\nHost: %s\r\nConnection: close\r\n\r\n", path, proto, addr)
	require.NoError(t, err)
	b, err := io.ReadAll(conn)
	require.NoError(t, err, "the server closes the connection")
	return string(b)
}

// Point 1: the admin and the listeners speak HTTP/1.1 only, as Envoy's
// codec does by default (accept_http_10 off), and the admin's HTTP/1.1
// replies are chunked.
func TestAdminRefusesHTTP10AndChunksReplies(t *testing.T) {
	sb := newSandbox(t)
	sb.startRunning(0, "-c", sb.config("c.yaml", 0), "--admin-address-path", sb.Path("admin"), "--fake-state-path", sb.Path("state"))
	web := readState(t, sb.Path("state"), 0).Listeners["web"]
	reply := rawGet(t, web, "/", "HTTP/1.0")
	assert.True(t, strings.HasPrefix(reply, "HTTP/1.1 426 Upgrade Required\r\n"), "the listener: %q", reply)
	assert.True(t, strings.HasPrefix(rawGet(t, web, "/", "HTTP/1.1"), "HTTP/1.1 200 OK\r\n"))

	b, err := os.ReadFile(sb.Path("admin"))
	require.NoError(t, err)
	admin := string(b)
	assert.Regexp(t, `^127\.0\.0\.1:[0-9]+$`, admin, "ip:port, no newline")

	reply = rawGet(t, admin, "/ready", "HTTP/1.0")
	assert.True(t, strings.HasPrefix(reply, "HTTP/1.1 426 Upgrade Required\r\n"), "%q", reply)
	assert.Contains(t, strings.ToLower(reply), "connection: close")

	reply = rawGet(t, admin, "/ready", "HTTP/1.1")
	head, body, ok := strings.Cut(reply, "\r\n\r\n")
	require.True(t, ok, reply)
	assert.True(t, strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n"), head)
	assert.Contains(t, head, "Transfer-Encoding: chunked")
	assert.NotContains(t, strings.ToLower(head), "content-length")
	assert.Equal(t, "5\r\nLIVE\n\r\n0\r\n\r\n", body)
}

// Point 1: /stats names Envoy's server gauges and the connection manager's
// stats, and filters them by regex;
// /quitquitquit takes POST only.
func TestAdminStats(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRunning(0, "-c", cfg, "--admin-address-path", sb.Path("admin0"), "--fake-parent-shutdown-time", "1h")
	e1 := sb.startRunning(1, "-c", cfg, "--admin-address-path", sb.Path("admin1"), "--fake-parent-shutdown-time", "1h")
	b, err := os.ReadFile(sb.Path("admin1"))
	require.NoError(t, err)
	admin := "http://" + string(b)

	code, body := get(t, admin+"/stats")
	assert.Equal(t, 200, code)
	assert.Equal(t, "http.web.downstream_cx_active: 0\n"+
		"http.web.downstream_cx_total: 0\n"+
		"http.web.downstream_rq_active: 0\n"+
		"http.web.downstream_rq_total: 0\n"+
		"server.hot_restart_epoch: 1\n"+
		"server.hot_restart_generation: 2\n"+
		"server.live: 1\n"+
		"server.parent_connections: 0\n"+
		"server.state: 0\n"+
		"server.total_connections: 0\n", body)
	_, body = get(t, admin+"/stats?filter="+"hot_restart_(epoch|generation)")
	assert.Equal(t, "server.hot_restart_epoch: 1\nserver.hot_restart_generation: 2\n", body)
	code, _ = get(t, admin+"/stats?filter=%28")
	assert.Equal(t, http.StatusBadRequest, code)

	code, body = get(t, admin+"/quitquitquit")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	assert.Equal(t, "Method GET not allowed, POST required.", body)
	assert.True(t, e1.Alive())
	code, _ = do(t, http.MethodPost, admin+"/quitquitquit", "")
	assert.Equal(t, 200, code)
	assert.Equal(t, proctest.Exit{}, e1.Wait(wait))
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait), "told to terminate at the child's shutdown")
}

// Point 1: an epoch reports LIVE before its workers-started callback has
// drained the parent and cleared INITIALIZING; --fake-live-gap widens that
// window so "LIVE but still INITIALIZING" can be observed.
func TestLiveBeforeInitializingIsCleared(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.start(0, "-c", cfg, "--fake-live-gap", "1h")
	admin := adminAddress(e0)
	proctest.WaitFor(t, wait, "/ready to say LIVE", func() bool {
		code, _ := get(t, "http://"+admin+"/ready")
		return code == 200
	})
	assert.True(t, sb.initializingFlag(), "LIVE, and INITIALIZING still set")
	e1 := sb.start(1, "-c", cfg)
	assert.Equal(t, proctest.Exit{Code: 1}, e1.Wait(wait))
	assert.Equal(t, "previous envoy process is still initializing", e1.Output())
}

// Point 3: a parent SIGKILLed while its LIVE child drains it makes the
// child abort at its next stats exchange: ten refused sends, then SIGABRT.
//
// The interval leaves a second between the exchange at start-up and the
// next: a parent killed while an exchange waits for its reply would leave
// the child blocked for ever (Envoy's receive has no timeout either).
func TestDeadParentAbortsChildAtStatsExchange(t *testing.T) {
	e1 := orphanedChild(newSandbox(t), "1s")
	assertAbortedAfterRetries(t, e1)
}

// Point 3: with --skip-hot-restart-parent-stats no stats request goes to
// the parent, so its generation is never merged.
func TestSkipParentStats(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	sb.startRunning(0, "-c", cfg)
	e1 := sb.startRunning(1, "-c", cfg, "--skip-hot-restart-parent-stats", "--fake-parent-shutdown-time", "1h",
		"--fake-stats-flush-interval", "10ms")
	_, body := get(t, "http://"+adminAddress(e1)+"/stats?filter=generation")
	assert.Equal(t, "server.hot_restart_generation: 1\n", body)
}

// Point 3: the Terminate an epoch sends its parent when it shuts down is
// fatal if the parent is dead, like every other message.
func TestDeadParentAbortsChildAtShutdown(t *testing.T) {
	e1 := orphanedChild(newSandbox(t), "1h")
	e1.Signal(syscall.SIGTERM)
	assertAbortedAfterRetries(t, e1)
	out := e1.Output()
	assert.Regexp(t, `(?s)caught ENVOY_SIGTERM.*shutting down server instance.*`+
		regexp.QuoteMeta("hot restart sendmsg() failed: returned -1, errno 111"), out)
	assert.NotContains(t, out, "exiting")
}

// Point 3: a parent asked to shut down its admin terminates its own
// parent; a dead grandparent is fatal to it.
func TestDeadGrandparentAbortsParentAtShutdownAdmin(t *testing.T) {
	sb := newSandbox(t)
	e1 := orphanedChild(sb, "1h")
	sb.start(2, "-c", sb.Path("c.yaml")) // blocks for the reply that never comes, as Envoy's child would
	assertAbortedAfterRetries(t, e1)
	assert.Regexp(t, `(?s)shutting down admin due to child startup.*terminating parent process.*`+
		regexp.QuoteMeta("hot restart sendmsg() failed: returned -1, errno 111"), e1.Output())
}

// Point 4: an access log that cannot be opened fails after ShutdownAdmin,
// as Envoy builds access logs with the listeners: the new epoch exits 1,
// its parent keeps serving without an admin, the grandparent was told to
// terminate and exits 0.
func TestLateFailureAfterShutdownAdmin(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRunning(0, "-c", cfg, "--fake-parent-shutdown-time", "1h")
	e1 := sb.startRunning(1, "-c", cfg, "--fake-parent-shutdown-time", "1h", "--fake-state-path", sb.Path("s1.json"))
	st1 := readState(t, sb.Path("s1.json"), 1)

	bad := sb.Path("bad.yaml")
	missing := sb.Path("no/such/dir/access.log")
	require.NoError(t, os.WriteFile(bad, []byte(fakeenvoytest.Bootstrap{Listener: "web", Body: "x", AccessLog: missing}.YAML()), 0o644))
	e2 := sb.start(2, "-c", bad)
	assert.Equal(t, proctest.Exit{Code: 1}, e2.Wait(wait))
	out := e2.Output()
	assert.Contains(t, out, "[critical][main]")
	assert.Contains(t, out, "error initializing configuration '"+bad+"': ")
	assert.True(t, strings.HasSuffix(out, "\n"+out[strings.LastIndex(out, "cannot open access log "+missing):]),
		"the bare message ends stderr: %q", out)

	e1.WaitLine("shutting down admin due to child startup", 1, wait)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait), "the grandparent was terminated")
	_, err := net.DialTimeout("tcp", st1.AdminAddress, time.Second)
	assert.Error(t, err, "the parent's admin is closed")
	code, body := get(t, "http://"+st1.Listeners["web"]+"/")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "fakeenvoy epoch=1 ", "the parent keeps serving")
	assert.True(t, e1.Alive())
}

// Point 5: the operator-visible messages, in order, for start-up, a hot
// restart, SIGUSR1 and SIGTERM.
func TestEnvoysMessages(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRunning(0, "-c", cfg)
	e1 := sb.startRunning(1, "-c", cfg, "--fake-parent-shutdown-time", "10ms")
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
	e1.WaitLine(regexp.QuoteMeta("[info][main]")+` .* shutting down parent after drain$`, 1, wait)
	e1.Signal(syscall.SIGUSR1)
	e1.WaitLine(regexp.QuoteMeta("[info][main]")+` .* caught SIGUSR1\. Reopening access logs\.$`, 1, wait)
	e1.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e1.Wait(wait))

	base := strconv.FormatUint(uint64(sb.BaseID), 10)
	assert.Regexp(t, `\] initializing epoch 0 \(base id=`+base+`, hot restart version=11\.[0-9]+\)\n`, e0.Output(), "no trailing period")
	assert.Regexp(t, `(?s)shutting down due to child request\n.*caught ENVOY_SIGTERM\n.*shutting down server instance\n.*main dispatch loop exited\n.*exiting$`, e0.Output())
	assert.Regexp(t, `(?s)\[warning\]\[main\] .* caught ENVOY_SIGTERM\n.*shutting down server instance\n.*main dispatch loop exited\n.*exiting$`, e1.Output())
}

// Point 5: --mode validate prints its verdict on stdout; a bad config is
// the critical log line and exit 1.
func TestValidateOutput(t *testing.T) {
	sb := newSandbox(t)
	good := sb.config("good.yaml", 0)
	bad := sb.Path("bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("admin: {bogus: 1}\n"), 0o644))
	stdout, stderr, code := runSplit(t, sb.fakeenvoy, "--mode", "validate", "-c", good)
	assert.Equal(t, 0, code)
	assert.Equal(t, "configuration '"+good+"' OK\n", stdout)
	assert.Empty(t, stderr)

	stdout, stderr, code = runSplit(t, sb.fakeenvoy, "--mode", "validate", "-c", bad)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Regexp(t, `(?s)^\[[^]]+\]\[[0-9]+\]\[critical\]\[main\] \[[^]]+\] error initializing configuration '`+regexp.QuoteMeta(bad)+`': .+\n$`, stderr)
	assert.Equal(t, 1, strings.Count(stderr, "error initializing configuration"), "no bare message after the log line in validate mode")
}

// runSplit runs fakeenvoy to completion with its streams apart (proctest
// merges them).
func runSplit(t *testing.T, binary string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// Point 5: the time flags take whole seconds, as Envoy's uint32 flags do.
func TestTimeFlagsAreWholeSeconds(t *testing.T) {
	sb := newSandbox(t)
	p := sb.start(0, "-c", sb.config("c.yaml", 0), "--drain-time-s", "0.1")
	assert.Equal(t, proctest.Exit{Code: 1}, p.Wait(wait))
	assert.Contains(t, p.Output(), "PARSE ERROR: Argument: --drain-time-s\n             Couldn't read argument value from string '0.1'")
}

// Point 5: the bind error names the epoch as given (Envoy reduces a copy
// modulo three for the name), and the _udp_ sockets are bound too.
func TestBindErrorAndUDPSockets(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	sb.startRunning(0, "-c", cfg)
	scaled := uint64(sb.BaseID) * 10
	for _, role := range []string{"child", "parent", "udp_child", "udp_parent"} {
		assert.Contains(t, sb.leftovers(), fmt.Sprintf("@envoy_domain_socket_%s_%d", role, scaled))
	}
	e3 := sb.start(3, "-c", cfg)
	assert.Equal(t, proctest.Exit{Code: 1}, e3.Wait(wait))
	assert.Equal(t, fmt.Sprintf("unable to bind domain socket with base_id=%d, id=3, errno=98 (see --base-id option)", scaled), e3.Output())
}

// Point 5: an exiting parent closes the connections it still has open
// rather than waiting for their clients.
func TestParentClosesOpenConnectionsAtExit(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.start(0, "-c", cfg, "--fake-state-path", sb.Path("s0.json"))
	st0 := readState(t, sb.Path("s0.json"), 0)
	e0.WaitLine(startedLine, 1, wait)
	conn, err := net.DialTimeout("tcp", st0.Listeners["web"], wait)
	require.NoError(t, err)
	defer conn.Close()
	r := bufio.NewReader(conn)
	_, err = fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	_, port, _ := net.SplitHostPort(st0.Listeners["web"])
	p, _ := strconv.Atoi(port)
	e1 := sb.startRunning(1, "-c", sb.config("c1.yaml", p), "--fake-parent-shutdown-time", "10ms")
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(wait)))
	_, err = r.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the idle keep-alive connection is closed by the exiting parent")
	e1.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e1.Wait(wait))
}

// Point 5: --drain-strategy immediate asks every client to close as soon
// as the drain starts (gradual is unit-tested in internal/server).
func TestImmediateDrainClosesAtOnce(t *testing.T) {
	sb := newSandbox(t)
	e0 := sb.start(0, "-c", sb.config("c.yaml", 0), "--fake-state-path", sb.Path("s0.json"),
		"--drain-strategy", "immediate", "--fake-drain-time", "1h")
	st0 := readState(t, sb.Path("s0.json"), 0)
	e0.WaitLine(startedLine, 1, wait)
	conn, err := net.DialTimeout("tcp", st0.Listeners["web"], wait)
	require.NoError(t, err)
	defer conn.Close()
	r := bufio.NewReader(conn)
	ask := func() *http.Response {
		_, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(r, nil)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	assert.False(t, ask().Close, "not draining yet")

	_, port, _ := net.SplitHostPort(st0.Listeners["web"])
	p, _ := strconv.Atoi(port)
	sb.start(1, "-c", sb.config("c1.yaml", p), "--fake-parent-shutdown-time", "1h")
	e0.WaitLine("closing and draining listeners", 1, wait)
	assert.True(t, ask().Close, "connection: close once draining")
}

// Mirrors source/server/admin/utils.cc populateFallbackResponseHeaders
// (content-type text/plain; charset=UTF-8 unless the handler set one,
// cache-control: no-cache, max-age=0, x-content-type-options: nosniff) and
// Envoy's HTTP/1 codec (source/common/http/http1/codec_impl.cc), which
// sends header names as its header map holds them, lowercase: the admin's
// replies carry lowercase names, but for the framing headers net/http
// writes itself (see the README).
func TestAdminHeadersAreEnvoys(t *testing.T) {
	sb := newSandbox(t)
	sb.startRunning(0, "-c", sb.config("c.yaml", 0), "--admin-address-path", sb.Path("admin"))
	b, err := os.ReadFile(sb.Path("admin"))
	require.NoError(t, err)
	admin := string(b)

	for path, contentType := range map[string]string{
		"/ready":       "text/plain; charset=UTF-8",
		"/server_info": "application/json",
		"/nowhere":     "text/plain; charset=UTF-8",
	} {
		head, _, ok := strings.Cut(rawGet(t, admin, path, "HTTP/1.1"), "\r\n\r\n")
		require.True(t, ok)
		lines := strings.Split(head, "\r\n")[1:]
		assert.Contains(t, lines, "content-type: "+contentType, path)
		assert.Contains(t, lines, "cache-control: no-cache, max-age=0", path)
		assert.Contains(t, lines, "x-content-type-options: nosniff", path)
		assert.Contains(t, lines, "server: envoy", path)
		assert.Contains(t, lines, "Transfer-Encoding: chunked", path)
		assert.Contains(t, lines, "Connection: close", path, "the request asked for it")
		var names []string
		for _, line := range lines {
			name, value, _ := strings.Cut(line, ": ")
			if framing := name == "Transfer-Encoding" || name == "Connection"; !framing {
				names = append(names, name)
			}
			if name == "date" {
				_, err := http.ParseTime(value)
				assert.NoError(t, err, "date: %q", value)
			}
		}
		assert.ElementsMatch(t, []string{"cache-control", "content-type", "date", "server", "x-content-type-options"}, names, path)
	}
}
