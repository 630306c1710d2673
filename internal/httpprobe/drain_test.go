package httpprobe

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// admin serves one canned answer per connection and records the request
// lines it got.
func admin(t *testing.T, answer func(requestLine string) string) (base string, requests chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	requests = make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			n, _ := c.Read(buf)
			line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
			requests <- line + " | " + string(buf[:n])
			io.WriteString(c, answer(line))
			c.Close()
		}
	}()
	return "http://" + ln.Addr().String(), requests
}

func ok(body string) string {
	return "HTTP/1.1 200 OK\r\ncontent-length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

func TestDrainCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base, requests := admin(t, func(line string) string {
		if strings.HasPrefix(line, "GET /stats") {
			return ok("http.admin.downstream_cx_active: 1\nhttp.ingress.downstream_cx_active: 5\nhttp.egress.downstream_cx_active: 2\n")
		}
		return ok("OK\n")
	})

	require.NoError(t, FailHealthcheck(ctx, base+"/"))
	got := <-requests
	require.True(t, strings.HasPrefix(got, "POST /healthcheck/fail HTTP/1.1 |"), got)
	require.Contains(t, got, "Content-Length: 0\r\n")

	require.NoError(t, DrainListeners(ctx, base))
	require.True(t, strings.HasPrefix(<-requests, "POST /drain_listeners?graceful HTTP/1.1"))

	n, err := ActiveConnections(ctx, base)
	require.NoError(t, err)
	require.Equal(t, 7, n, "every HTTP listener's, the admin's aside")
	require.True(t, strings.HasPrefix(<-requests, "GET /stats?filter=%5Ehttp%5C..%2A%5C.downstream_cx_active%24 HTTP/1.1"))
}

func TestDrainCommandErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base, _ := admin(t, func(line string) string {
		if strings.HasPrefix(line, "GET /stats") {
			return ok("server.live: 1\n")
		}
		return "HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 38\r\n\r\nMethod GET not allowed, POST required."
	})
	require.ErrorContains(t, FailHealthcheck(ctx, base), "/healthcheck/fail: status 405 \"Method GET not allowed, POST required.\"")
	_, err := ActiveConnections(ctx, base)
	require.ErrorContains(t, err, "no http.*.downstream_cx_active stat in /stats")
	_, err = sumActive([]byte("http.ingress.downstream_cx_active: x\n"))
	require.ErrorContains(t, err, `"x" is not a number`)
}
