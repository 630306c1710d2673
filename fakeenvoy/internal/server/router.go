//lint:file-ignore SA1019 Envoy still honours the deprecated HeaderMatcher fields (exact, prefix, suffix, contains), so fakeenvoy must read them too.

package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/accesslog"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/config"
)

// router is a listener's HTTP connection manager: the health check filter,
// then the route table (direct responses and routes to clusters), then the
// file access logs.
type router struct {
	l        *listener
	http     *config.HTTP
	clusters map[string]config.Cluster
	logs     []*accesslog.File
	// healthCheckFailed is the server's health check state
	// (/healthcheck/fail); nil reads as passing.
	healthCheckFailed *atomic.Bool
	serviceCluster    string // --service-cluster, named in health check replies
}

// answer is what the connection manager decided for one request.
type answer struct {
	status      int
	body        string
	proxy       *httputil.ReverseProxy // set: the request goes upstream
	flags       string                 // the access log's response flags ("" for none)
	healthCheck bool                   // the health check filter matched the request
}

// ServeHTTP answers, adding the epoch and pid (headers and, for local
// replies, the body), and writes the access log line before the response
// leaves.
func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	l := rt.l
	l.httpStats.rqTotal.Inc()
	l.httpStats.rqActive.Inc()
	defer l.httpStats.rqActive.Dec()
	h := w.Header()
	h.Set("x-fakeenvoy-epoch", strconv.FormatUint(uint64(l.epoch), 10))
	h.Set("x-fakeenvoy-pid", strconv.Itoa(l.pid))
	if l.drain.drainClose() {
		// A draining Envoy asks HTTP/1.1 clients to go elsewhere.
		h.Set("connection", "close")
	}
	a := rt.decide(r)
	rt.healthCheckHeaders(h, a)
	if a.proxy != nil {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		a.proxy.ServeHTTP(rec, r)
		rt.log(accessLogLine(start, r, rec.status, a.flags, 0, rec.sent, time.Since(start)))
		return
	}
	received, _ := io.Copy(io.Discard, r.Body)
	body := a.body + fmt.Sprintf("fakeenvoy epoch=%d pid=%d\n", l.epoch, l.pid)
	h.Set("content-type", "text/plain")
	h.Set("server", "envoy")
	h.Set("content-length", strconv.Itoa(len(body)))
	sent := len(body)
	if r.Method == http.MethodHead {
		sent = 0
	}
	rt.log(accessLogLine(start, r, a.status, a.flags, received, sent, time.Since(start)))
	w.WriteHeader(a.status)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
}

func (rt *router) log(line string) {
	for _, f := range rt.logs {
		f.Write(line)
	}
}

// decide runs the health check filter, then the route table.
func (rt *router) decide(r *http.Request) answer {
	hc := rt.http.HealthCheck
	if hc == nil || !headersMatch(hc.Headers, r) {
		return rt.route(r)
	}
	// A health check: answered here unless pass-through mode lets it
	// through, and always while the server fails health checks.
	switch {
	case rt.failingHealthChecks():
		return answer{status: http.StatusServiceUnavailable, flags: "LH", healthCheck: true}
	case !hc.PassThrough:
		return answer{status: http.StatusOK, healthCheck: true}
	}
	a := rt.route(r)
	a.healthCheck = true
	return a
}

func (rt *router) failingHealthChecks() bool {
	return rt.healthCheckFailed != nil && rt.healthCheckFailed.Load()
}

// healthCheckHeaders are the health check filter's response headers:
// health check replies name the local cluster; while the server fails
// health checks, every other reply says so, so that an Envoy upstream of
// this one stops sending here at once.
func (rt *router) healthCheckHeaders(h http.Header, a answer) {
	switch {
	case rt.http.HealthCheck == nil:
	case a.healthCheck:
		h.Set("x-envoy-upstream-healthchecked-cluster", rt.serviceCluster)
	case rt.failingHealthChecks():
		h.Set("x-envoy-immediate-health-check-fail", "true")
	}
}

// route answers from the route table.
func (rt *router) route(r *http.Request) answer {
	vh := virtualHost(rt.http.VirtualHosts, r.Host, rt.http.IgnoreHostPort)
	if vh == nil {
		return answer{status: http.StatusNotFound}
	}
	for _, route := range vh.GetRoutes() {
		if !routeMatches(route.GetMatch(), r) {
			continue
		}
		if dr := route.GetDirectResponse(); dr != nil {
			return answer{status: int(dr.GetStatus()), body: dr.GetBody().GetInlineString() + string(dr.GetBody().GetInlineBytes())}
		}
		if ra := route.GetRoute(); ra.GetCluster() != "" {
			return rt.upstream(rt.clusters[ra.GetCluster()], ra.GetPrefixRewrite(), route.GetMatch().GetPrefix())
		}
		// Other actions (redirects, weighted clusters...) are parsed, not served.
		return answer{status: http.StatusNotImplemented, body: "fakeenvoy does not serve this route action\n"}
	}
	return answer{status: http.StatusNotFound}
}

// upstreamTransport is every proxied request's: a new connection each
// (no pooling to reason about across epochs), 5 s to connect.
var upstreamTransport = &http.Transport{DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, DisableKeepAlives: true}

// upstream proxies to the cluster's first endpoint; a failure to connect
// is Envoy's 503 with its body.
func (rt *router) upstream(c config.Cluster, prefixRewrite, prefix string) answer {
	if len(c.Endpoints) == 0 {
		return answer{status: http.StatusServiceUnavailable, body: "no healthy upstream"}
	}
	target := c.Endpoints[0]
	return answer{proxy: &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = target
			if prefixRewrite != "" && strings.HasPrefix(pr.Out.URL.Path, prefix) {
				pr.Out.URL.Path = prefixRewrite + strings.TrimPrefix(pr.Out.URL.Path, prefix)
				pr.Out.URL.RawPath = ""
			}
			pr.Out.Host = pr.In.Host
		},
		Transport: upstreamTransport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			body := "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
			w.Header().Set("content-type", "text/plain")
			w.Header().Set("content-length", strconv.Itoa(len(body)))
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, body)
		},
	}}
}

// virtualHost picks the virtual host for host as Envoy does: an exact
// domain, then the longest suffix wildcard, then the longest prefix
// wildcard, then "*". The port is part of the host unless ignorePort.
func virtualHost(vhs []*routev3.VirtualHost, host string, ignorePort bool) *routev3.VirtualHost {
	if h, _, err := net.SplitHostPort(host); err == nil && ignorePort {
		host = h
	}
	host = strings.ToLower(host)
	var best *routev3.VirtualHost
	bestRank, bestLen := 0, -1
	for _, vh := range vhs {
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			rank, n := 0, len(d)
			switch {
			case d == host:
				rank = 4
			case d == "*":
				rank, n = 1, 0
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]):
				rank = 3
			case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]):
				rank = 2
			default:
				continue
			}
			if rank > bestRank || (rank == bestRank && n > bestLen) {
				best, bestRank, bestLen = vh, rank, n
			}
		}
	}
	return best
}

func routeMatches(m *routev3.RouteMatch, r *http.Request) bool {
	fold := func(s string) string { return s }
	if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		fold = strings.ToLower
	}
	path := fold(r.URL.Path)
	ok := false
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix: // "" matches every path, as in Envoy
		ok = strings.HasPrefix(path, fold(p.Prefix))
	case *routev3.RouteMatch_Path:
		ok = path == fold(p.Path)
	case *routev3.RouteMatch_SafeRegex:
		ok = fullMatch(p.SafeRegex.GetRegex(), r.URL.Path)
	case *routev3.RouteMatch_PathSeparatedPrefix:
		sep := fold(p.PathSeparatedPrefix)
		ok = path == sep || strings.HasPrefix(path, sep+"/")
	}
	return ok && headersMatch(m.GetHeaders(), r)
}

// fullMatch: the RE2 expression matches all of v, as Envoy's safe_regex
// does.
func fullMatch(expr, v string) bool {
	re, err := regexp.Compile("^(?:" + expr + ")$")
	return err == nil && re.MatchString(v)
}

// headersMatch: every matcher matches (an empty list matches everything,
// as in Envoy). ":path", ":method" and ":authority" are the pseudo-headers.
func headersMatch(ms []*routev3.HeaderMatcher, r *http.Request) bool {
	for _, m := range ms {
		var vals []string
		switch m.GetName() {
		case ":path":
			vals = []string{r.URL.RequestURI()}
		case ":method":
			vals = []string{r.Method}
		case ":authority", "host":
			vals = []string{r.Host}
		default:
			vals = r.Header.Values(m.GetName())
		}
		if headerMatch(m, vals) == m.GetInvertMatch() {
			return false
		}
	}
	return true
}

func headerMatch(m *routev3.HeaderMatcher, vals []string) bool {
	if p, ok := m.GetHeaderMatchSpecifier().(*routev3.HeaderMatcher_PresentMatch); ok {
		return (len(vals) > 0) == p.PresentMatch // false: the header must be absent
	}
	if len(vals) == 0 {
		return m.GetTreatMissingHeaderAsEmpty() && stringMatch(m, "")
	}
	return stringMatch(m, strings.Join(vals, ","))
}

func stringMatch(m *routev3.HeaderMatcher, v string) bool {
	switch s := m.GetHeaderMatchSpecifier().(type) {
	case nil:
		return true // no value matcher: the header being there is enough
	case *routev3.HeaderMatcher_ExactMatch:
		return v == s.ExactMatch
	case *routev3.HeaderMatcher_PrefixMatch:
		return strings.HasPrefix(v, s.PrefixMatch)
	case *routev3.HeaderMatcher_SuffixMatch:
		return strings.HasSuffix(v, s.SuffixMatch)
	case *routev3.HeaderMatcher_ContainsMatch:
		return strings.Contains(v, s.ContainsMatch)
	case *routev3.HeaderMatcher_SafeRegexMatch:
		return fullMatch(s.SafeRegexMatch.GetRegex(), v)
	case *routev3.HeaderMatcher_RangeMatch:
		// An integer in [start, end), as Envoy's range_match.
		n, err := strconv.ParseInt(v, 10, 64)
		return err == nil && n >= s.RangeMatch.GetStart() && n < s.RangeMatch.GetEnd()
	case *routev3.HeaderMatcher_StringMatch:
		return matchString(s.StringMatch, v)
	}
	return false
}

func matchString(sm *matcherv3.StringMatcher, v string) bool {
	if sm.GetIgnoreCase() {
		v = strings.ToLower(v)
	}
	lower := func(s string) string {
		if sm.GetIgnoreCase() {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return v == lower(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(v, lower(p.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(v, lower(p.Suffix))
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(v, lower(p.Contains))
	case *matcherv3.StringMatcher_SafeRegex:
		return fullMatch(p.SafeRegex.GetRegex(), v)
	}
	return false
}

// statusRecorder notes what a proxied response sent, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	sent   int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	n, err := s.ResponseWriter.Write(b)
	s.sent += n
	return n, err
}

// accessLogLine is Envoy's default access log format.
func accessLogLine(start time.Time, r *http.Request, status int, flags string, received int64, sent int, d time.Duration) string {
	q := func(s string) string {
		if s == "" {
			return "-"
		}
		return strings.ReplaceAll(s, `"`, `\"`)
	}
	return fmt.Sprintf("[%s] \"%s %s %s\" %d %s %d %d %d - \"%s\" \"%s\" \"%s\" \"%s\" \"-\"\n",
		start.UTC().Format("2006-01-02T15:04:05.000Z"), r.Method, q(r.URL.RequestURI()), r.Proto,
		status, q(flags), received, sent, d.Milliseconds(),
		q(r.Header.Get("x-forwarded-for")), q(r.UserAgent()), q(r.Header.Get("x-request-id")), q(r.Host))
}
