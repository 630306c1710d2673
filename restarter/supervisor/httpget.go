package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// httpGet fetches rawURL (plain http://) with HTTP/1.0 and returns the
// status code and at most maxBody bytes of the body. Readiness probes only
// ever talk to an admin endpoint on the host; net/http would bring TLS,
// HTTP/2 and proxies along, and double the restarter's resident memory.
func httpGet(ctx context.Context, rawURL string, maxBody int64) (int, []byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, nil, err
	}
	if u.Scheme != "http" {
		return 0, nil, fmt.Errorf("%s: only http:// URLs are supported", rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: restarter\r\nConnection: close\r\n\r\n", u.RequestURI(), u.Host); err != nil {
		return 0, nil, err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.1 200 OK"
	fields := strings.Fields(line)
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "HTTP/") {
		return 0, nil, fmt.Errorf("%s: malformed status line %q", rawURL, strings.TrimSpace(line))
	}
	code, err := strconv.Atoi(fields[1])
	if err != nil {
		return 0, nil, fmt.Errorf("%s: malformed status line %q", rawURL, strings.TrimSpace(line))
	}
	for { // skip the headers
		h, err := r.ReadString('\n')
		if err != nil {
			return 0, nil, err
		}
		if strings.TrimRight(h, "\r\n") == "" {
			break
		}
	}
	body, err := io.ReadAll(io.LimitReader(r, maxBody))
	return code, body, err
}
