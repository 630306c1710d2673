package httpprobe

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
)

// The drain of a graceful stop, through Envoy's admin (admin/server_cmd_handler.cc,
// admin/listeners_handler.cc, admin/stats_handler.cc).

// FailHealthcheck POSTs /healthcheck/fail to the admin at base (such as
// http://127.0.0.1:9901): Envoy answers 503 to its health checks and its
// /ready says DRAINING, so load balancers stop sending.
func FailHealthcheck(ctx context.Context, base string) error {
	return post200(ctx, strings.TrimRight(base, "/")+"/healthcheck/fail")
}

// DrainListeners POSTs /drain_listeners?graceful: Envoy drains its
// listeners over its drain time (connection: close on HTTP/1, GOAWAY on
// HTTP/2) before it stops them.
func DrainListeners(ctx context.Context, base string) error {
	return post200(ctx, strings.TrimRight(base, "/")+"/drain_listeners?graceful")
}

func post200(ctx context.Context, rawURL string) error {
	code, body, err := Post(ctx, rawURL, MaxBody)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("POST %s: status %d%s", rawURL, code, excerpt(body))
	}
	return nil
}

// ActiveConnections returns the downstream connections Envoy's HTTP
// connection managers hold now: the sum of every http.<prefix>.downstream_cx_active
// gauge but the admin's own. These gauges move with each connection, where
// server.total_connections is only updated at each stats flush (every 5 s
// by default: a drain that read it would see a stale count, even 0 before
// the first flush). They include the parent's share merged at the last
// flush. A TCP proxy's connections are not in them.
func ActiveConnections(ctx context.Context, base string) (int, error) {
	rawURL := strings.TrimRight(base, "/") + "/stats?filter=%5Ehttp%5C..%2A%5C.downstream_cx_active%24"
	code, body, err := Get(ctx, rawURL, MaxBody)
	if err != nil {
		return 0, err
	}
	if code != 200 {
		return 0, fmt.Errorf("GET %s: status %d%s", rawURL, code, excerpt(body))
	}
	return sumActive(body)
}

// sumActive adds the http.*.downstream_cx_active gauges in /stats' text
// output ("name: value" lines), the admin's aside.
func sumActive(body []byte) (int, error) {
	total, found := 0, false
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok || !strings.HasPrefix(k, "http.") || !strings.HasSuffix(k, ".downstream_cx_active") || k == "http.admin.downstream_cx_active" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, fmt.Errorf("stat %s: %q is not a number", k, v)
		}
		total, found = total+n, true
	}
	if !found {
		return 0, fmt.Errorf("no http.*.downstream_cx_active stat in /stats: no HTTP listener to drain")
	}
	return total, nil
}
