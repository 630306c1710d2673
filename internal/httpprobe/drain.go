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

// TotalConnections returns Envoy's server.total_connections gauge: the
// downstream connections of this epoch and of its parent while it lives.
func TotalConnections(ctx context.Context, base string) (int, error) {
	rawURL := strings.TrimRight(base, "/") + "/stats?filter=%5Eserver%5C.total_connections%24"
	code, body, err := Get(ctx, rawURL, MaxBody)
	if err != nil {
		return 0, err
	}
	if code != 200 {
		return 0, fmt.Errorf("GET %s: status %d%s", rawURL, code, excerpt(body))
	}
	return parseStat(body, "server.total_connections")
}

// parseStat finds name in /stats' text output ("name: value" lines).
func parseStat(body []byte, name string) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if ok && k == name {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, fmt.Errorf("stat %s: %q is not a number", name, v)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("stat %s not in /stats", name)
}
