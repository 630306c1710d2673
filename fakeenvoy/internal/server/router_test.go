package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/accesslog"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/config"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/stats"
)

// routerDoc: a health check on /healthz, a virtual host for api.example
// routing /v1/ to the "api" cluster (with a prefix rewrite) and /down/ to a
// cluster nothing listens on, and a catch-all host answering directly.
func routerDoc(upstream, closed string) string {
	host := func(a string) string {
		h, p, _ := net.SplitHostPort(a)
		return fmt.Sprintf("{socket_address: {address: %q, port_value: %s}}", h, p)
	}
	return fmt.Sprintf(`static_resources:
  clusters:
  - name: api
    load_assignment: {cluster_name: api, endpoints: [{lb_endpoints: [{endpoint: {address: %s}}]}]}
  - name: down
    load_assignment: {cluster_name: down, endpoints: [{lb_endpoints: [{endpoint: {address: %s}}]}]}
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config:
            virtual_hosts:
            - name: api
              domains: ["api.example", "api.example:*"]
              routes:
              - match: {prefix: "/v1/"}
                route: {cluster: api, prefix_rewrite: "/internal/"}
              - match: {prefix: "/down/"}
                route: {cluster: down}
            - name: rest
              domains: ["*"]
              routes:
              - match: {path: "/exact"}
                direct_response: {status: 418, body: {inline_string: "teapot\n"}}
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_string: "hello\n"}}
          http_filters:
          - name: envoy.filters.http.health_check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck
              pass_through_mode: false
              headers: [{name: ":path", string_match: {exact: "/healthz"}}]
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`, host(upstream), host(closed))
}

func TestRouterServesRoutesHealthChecksAndClusters(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream saw %s for %s", r.URL.Path, r.Host)
	}))
	defer upstream.Close()
	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := closedLn.Addr().String()
	require.NoError(t, closedLn.Close())

	c, err := config.Parse([]byte(routerDoc(upstream.Listener.Addr().String(), closed)))
	require.NoError(t, err)
	l := &listener{cfg: c.Listeners[0], epoch: 3, pid: 42, drain: listenerDrain(&drainManager{}, false, false), httpStats: newHTTPStats(stats.New(), "test")}
	l.router = &router{l: l, http: c.Listeners[0].HTTP, clusters: c.Clusters}
	front := httptest.NewServer(l.router)
	defer front.Close()

	get := func(host, path string) (int, string, http.Header) {
		req, err := http.NewRequest(http.MethodGet, front.URL+path, nil)
		require.NoError(t, err)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b), resp.Header
	}

	for name, tc := range map[string]struct {
		host, path string
		status     int
		body       string
	}{
		"health check answered by the filter":  {"anything", "/healthz", 200, "fakeenvoy epoch=3 pid=42\n"},
		"exact path":                           {"www.example", "/exact", 418, "teapot\n"},
		"catch-all prefix":                     {"www.example", "/other", 200, "hello\n"},
		"route to a cluster, prefix rewritten": {"api.example", "/v1/users", 200, "upstream saw /internal/users for api.example"},
		"cluster not listening":                {"api.example", "/down/x", 503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure"},
		"no route in the virtual host":         {"api.example", "/nope", 404, ""},
	} {
		t.Run(name, func(t *testing.T) {
			status, body, h := get(tc.host, tc.path)
			assert.Equal(t, tc.status, status)
			assert.True(t, strings.HasPrefix(body, tc.body), "body %q, want prefix %q", body, tc.body)
			assert.Equal(t, "3", h.Get("x-fakeenvoy-epoch"))
		})
	}
}

func TestVirtualHostPrecedence(t *testing.T) {
	c, err := config.Parse([]byte(`static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l
          route_config:
            virtual_hosts:
            - {name: any, domains: ["*"]}
            - {name: prefix, domains: ["foo.*"]}
            - {name: suffix, domains: ["*.example.com"]}
            - {name: exact, domains: ["foo.example.com"]}
`))
	require.NoError(t, err)
	vhs := c.Listeners[0].HTTP.VirtualHosts
	for host, want := range map[string]string{
		"foo.example.com":    "exact",
		"foo.example.com:80": "prefix", // the port is part of the host
		"bar.example.com":    "suffix",
		"foo.bar":            "prefix",
		"other":              "any",
	} {
		assert.Equal(t, want, virtualHost(vhs, host, false).GetName(), host)
	}
	assert.Equal(t, "exact", virtualHost(vhs, "foo.example.com:80", true).GetName(), "ignore_port_in_host_matching")
}

// The admin's writer keeps http.Flusher: /quitquitquit flushes its answer
// before the admin is closed, and a lost flush cut the body under load.
func TestAdminWriterFlushes(t *testing.T) {
	rec := httptest.NewRecorder()
	envoyHTTP1(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f, ok := w.(http.Flusher)
		require.True(t, ok, "the admin's writer is an http.Flusher")
		w.Header().Set("content-length", "3")
		_, _ = io.WriteString(w, "OK\n")
		f.Flush()
		assert.True(t, rec.Flushed)
		assert.Equal(t, "OK\n", rec.Body.String())
	}), adminDrain(&drainManager{})).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/quitquitquit", nil))
}

// Mirrors source/server/admin/utils.cc populateFallbackResponseHeaders: an
// admin reply is text/plain unless its handler says otherwise, no-cache
// unless it says otherwise, and never sniffed, its header names lowercase
// as Envoy's codec sends them (but for those net/http frames the reply
// with). And the admin's connection manager drain-closes as the server's
// drain manager says (source/server/admin/admin.cc
// createNetworkFilterChain).
func TestAdminReplyHeaders(t *testing.T) {
	drain := &drainManager{strategy: "immediate", drainTime: time.Hour}
	defer drain.stop()
	serve := func(h http.HandlerFunc) http.Header {
		rec := httptest.NewRecorder()
		envoyHTTP1(h, adminDrain(drain)).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
		return rec.Result().Header
	}
	// The header as it goes on the wire: by its exact name.
	wire := func(h http.Header, name string) string { return strings.Join(h[name], ",") }
	h := serve(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "LIVE\n") })
	assert.Equal(t, "text/plain; charset=UTF-8", wire(h, "content-type"))
	assert.Equal(t, "no-cache, max-age=0", wire(h, "cache-control"))
	assert.Equal(t, "nosniff", wire(h, "x-content-type-options"))
	assert.Equal(t, "envoy", wire(h, "server"))
	assert.NotEmpty(t, wire(h, "date"))
	assert.Contains(t, h, "Content-Type", "present with no value: net/http adds none")
	assert.Empty(t, h["Content-Type"])
	assert.Empty(t, h.Get("connection"))

	drain.startDrainSequence(drainInboundOnly, func() {})
	h = serve(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("content-type", "application/json")
		_, _ = io.WriteString(w, "{}")
	})
	assert.Equal(t, "application/json", wire(h, "content-type"))
	assert.Empty(t, h.Get("connection"), "an inbound-only drain leaves the admin alone")
	drain.startDrainSequence(drainAll, func() {})
	h = serve(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "OK\n") })
	assert.Equal(t, "close", wire(h, "Connection"), "a drain of All closes admin connections too, in net/http's case")
}

// Route and header matchers as Envoy's: an empty prefix matches every
// path; safe_regex_match and range_match test the value; present_match
// false asks for the header to be absent.
func TestRouteAndHeaderMatchers(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/a/b", nil)
	req.Header.Set("x-v", "zzz")
	req.Header.Set("x-n", "4")
	header := func(m *routev3.HeaderMatcher) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{}, Headers: []*routev3.HeaderMatcher{m}}
	}
	regex := func(name, re string) *routev3.HeaderMatcher {
		//lint:ignore SA1019 Envoy still honours the deprecated safe_regex_match, so fakeenvoy reads it.
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: re}}}
	}
	rangeOf := func(start, end int64) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: "x-n", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: start, End: end}}}
	}
	present := func(name string, want bool) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: want}}
	}
	for name, tc := range map[string]struct {
		m    *routev3.RouteMatch
		want bool
	}{
		"empty prefix":               {&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{}}, true},
		"regex path":                 {&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/a/.*"}}}, true},
		"regex header matches":       {header(regex("x-v", "z+")), true},
		"regex header does not":      {header(regex("x-v", "^abc$")), false},
		"range holds the value":      {header(rangeOf(1, 5)), true},
		"range excludes its end":     {header(rangeOf(1, 4)), false},
		"present":                    {header(present("x-v", true)), true},
		"absent asked, header there": {header(present("x-v", false)), false},
		"absent asked, header gone":  {header(present("x-gone", false)), true},
	} {
		assert.Equal(t, tc.want, routeMatches(tc.m, req), name)
	}
}

// healthCheckDoc: a listener whose health check filter takes /healthz, in
// pass-through mode or not, before a catch-all direct response.
func healthCheckDoc(passThrough bool) string {
	return fmt.Sprintf(`static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_string: "routed\n"}}
          http_filters:
          - name: envoy.filters.http.health_check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck
              pass_through_mode: %t
              headers: [{name: ":path", string_match: {exact: "/healthz"}}]
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`, passThrough)
}

// Mirrors source/extensions/filters/http/health_check/health_check.cc: a
// health check is answered by the filter unless pass-through mode lets it
// through, and always while the server fails health checks, then 503 with
// the access log's LH flag; health check replies name the local cluster
// (x-envoy-upstream-healthchecked-cluster), and while failing every other
// reply carries x-envoy-immediate-health-check-fail. With the listener's
// default drain_type, failing also drain-closes every connection
// (source/server/drain_manager_impl.cc).
func TestHealthCheckFilter(t *testing.T) {
	type reply struct {
		status         int
		body           string // prefix
		healthChecked  bool   // x-envoy-upstream-healthchecked-cluster: svc
		immediateFail  bool   // x-envoy-immediate-health-check-fail: true
		flags          string // in the access log line
		connectionLost bool   // connection: close
	}
	for _, tc := range []struct {
		passThrough, failed bool
		healthz, other      reply
	}{
		{false, false, reply{200, "fakeenvoy epoch=", true, false, "-", false}, reply{200, "routed\n", false, false, "-", false}},
		{false, true, reply{503, "fakeenvoy epoch=", true, false, "LH", true}, reply{200, "routed\n", false, true, "-", true}},
		{true, false, reply{200, "routed\n", true, false, "-", false}, reply{200, "routed\n", false, false, "-", false}},
		{true, true, reply{503, "fakeenvoy epoch=", true, false, "LH", true}, reply{200, "routed\n", false, true, "-", true}},
	} {
		t.Run(fmt.Sprintf("pass_through=%t,failed=%t", tc.passThrough, tc.failed), func(t *testing.T) {
			c, err := config.Parse([]byte(healthCheckDoc(tc.passThrough)))
			require.NoError(t, err)
			var failed atomic.Bool
			failed.Store(tc.failed)
			logPath := filepath.Join(t.TempDir(), "access.log")
			files := accesslog.NewManager(time.Hour, accesslog.DefaultMinFlushSize, &sync.Mutex{})
			defer files.Close()
			accessFile, err := files.Open(logPath)
			require.NoError(t, err)
			drain := &drainManager{strategy: "gradual", drainTime: time.Hour, healthCheckFailed: &failed}
			l := &listener{cfg: c.Listeners[0], pid: 42, drain: listenerDrain(drain, false, false), httpStats: newHTTPStats(stats.New(), "web")}
			l.router = &router{l: l, http: c.Listeners[0].HTTP, healthCheckFailed: &failed, serviceCluster: "svc", logs: []*accesslog.File{accessFile}}
			front := httptest.NewServer(l.router)
			defer front.Close()

			for path, want := range map[string]reply{"/healthz": tc.healthz, "/other": tc.other} {
				resp, err := http.Get(front.URL + path)
				require.NoError(t, err)
				body, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				resp.Body.Close()
				assert.Equal(t, want.status, resp.StatusCode, path)
				assert.True(t, strings.HasPrefix(string(body), want.body), "%s: body %q", path, body)
				cluster, ok := resp.Header["X-Envoy-Upstream-Healthchecked-Cluster"]
				assert.Equal(t, want.healthChecked, ok, path)
				if want.healthChecked {
					assert.Equal(t, []string{"svc"}, cluster, path)
				}
				assert.Equal(t, want.immediateFail, resp.Header.Get("x-envoy-immediate-health-check-fail") == "true", path)
				assert.Equal(t, want.connectionLost, resp.Close, path)
				accessFile.Flush()
				log, err := os.ReadFile(logPath)
				require.NoError(t, err)
				line := string(log[strings.LastIndex(strings.TrimSuffix(string(log), "\n"), "\n")+1:])
				assert.Contains(t, line, fmt.Sprintf(`"GET %s HTTP/1.1" %d %s `, path, want.status, want.flags))
			}
		})
	}
}
