package httpprobe

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHTTPGetSpeaksHTTP11(t *testing.T) {
	// Given a server that refuses anything below HTTP/1.1, as Envoy's admin
	// does, and answers some paths chunked,
	var gotHost, gotConnection string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.ProtoAtLeast(1, 1) {
			w.WriteHeader(http.StatusUpgradeRequired)
			return
		}
		gotHost, gotConnection = r.Host, r.Header.Get("Connection")
		switch r.URL.Path {
		case "/ready":
			w.Write([]byte("LIVE\n"))
		case "/chunked":
			w.Write([]byte("first "))
			w.(http.Flusher).Flush() // forces chunked encoding
			w.Write([]byte("second"))
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("INITIALIZING\n"))
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// when the probe asks, then it gets the answers, whatever their framing.
	code, body, err := Get(ctx, srv.URL+"/ready?x=1", 1<<20)
	require.NoError(t, err)
	require.Equal(t, 200, code)
	require.Equal(t, "LIVE\n", string(body))
	require.Equal(t, strings.TrimPrefix(srv.URL, "http://"), gotHost)
	require.Equal(t, "close", gotConnection)

	code, body, err = Get(ctx, srv.URL+"/chunked", 1<<20)
	require.NoError(t, err)
	require.Equal(t, 200, code)
	require.Equal(t, "first second", string(body))

	code, body, err = Get(ctx, srv.URL+"/initializing", 1<<20)
	require.NoError(t, err)
	require.Equal(t, 503, code)
	require.Equal(t, "INITIALIZING\n", string(body))

	_, _, err = Get(ctx, srv.URL+"/chunked", 5)
	require.ErrorContains(t, err, "chunked body larger than the limit of 5 bytes")
	_, _, err = Get(ctx, srv.URL+"/ready", 2)
	require.ErrorContains(t, err, "body of 5 bytes is larger than the limit of 2")
}

func TestHTTPGetFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, _, err := Get(ctx, "https://127.0.0.1:1/", 1<<20)
	require.EqualError(t, err, "GET https://127.0.0.1:1/: must be an http:// URL (for anything else use --ready-cmd)")

	// Nothing listening: an error naming the URL, not a hang.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, _, err = Get(ctx, "http://"+addr+"/ready", 1<<20)
	require.ErrorContains(t, err, "GET http://"+addr+"/ready: ")
	require.ErrorContains(t, err, "connection refused")

	// Not HTTP at all: an error naming the status line.
	_, _, err = Get(ctx, serveOnce(t, "SSH-2.0-OpenSSH\r\n"), 1<<20)
	require.ErrorContains(t, err, `malformed status line "SSH-2.0-OpenSSH"`)

	// A server that accepts and never answers: bounded by ctx.
	silent := serveOnce(t, "")
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	_, _, err = Get(short, silent, 1<<20)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "GET "+silent+": context deadline exceeded")
}

// serveOnce accepts one connection on a loopback port, writes answer, and
// keeps the connection open until the test ends. It returns the URL.
func serveOnce(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte(answer))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		for { // until the client hangs up or the test ends
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	return "http://" + ln.Addr().String() + "/"
}

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int64
		code     int
		body     string
		err      string
	}{
		{name: "content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLIVEextra", code: 200, body: "LIVE"},
		{name: "bare LF", in: "HTTP/1.1 200 OK\nContent-Length: 4\n\nLIVE", code: 200, body: "LIVE"},
		{name: "until close", in: "HTTP/1.1 503 Service Unavailable\r\n\r\nINITIALIZING", code: 503, body: "INITIALIZING"},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nLIVE\r\n1\r\n\n\r\n0\r\nX-Trailer: y\r\n\r\n", code: 200, body: "LIVE\n"},
		{name: "chunked wins over content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", code: 200, body: "ok"},
		{name: "interim 100 skipped", in: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", code: 200, body: "ok"},
		{name: "204 has no body", in: "HTTP/1.1 204 No Content\r\n\r\n", code: 204},
		{name: "HTTP/1.0 answer", in: "HTTP/1.0 200 OK\r\n\r\nok", code: 200, body: "ok"},
		{name: "426 from Envoy", in: "HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n", code: 426},
		{name: "empty", in: "", err: "reading the status line: EOF"},
		{name: "cut in the head", in: "HTTP/1.1 200 OK\r\nContent-Le", err: "reading the header: unexpected EOF"},
		{name: "no code", in: "HTTP/1.1 OK\r\n\r\n", err: `malformed status line "HTTP/1.1 OK"`},
		{name: "HTTP/2", in: "HTTP/2 200\r\n\r\n", err: `malformed status line "HTTP/2 200"`},
		{name: "101", in: "HTTP/1.1 101 Switching Protocols\r\n\r\n", err: "unexpected 101"},
		{name: "bad header", in: "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", err: `malformed header line "no colon"`},
		{name: "folded header", in: "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", err: `malformed header line " c"`},
		{name: "negative length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: `invalid Content-Length "-1"`},
		{name: "conflicting lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", err: `invalid Content-Length "2"`},
		{name: "gzip", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", err: `unsupported Transfer-Encoding "gzip, chunked"`},
		{name: "short body", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", err: "body shorter than its Content-Length 10: unexpected EOF"},
		{name: "too long", max: 3, in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", err: "body of 10 bytes is larger than the limit of 3"},
		{name: "too long until close", max: 3, in: "HTTP/1.1 200 OK\r\n\r\n0123", err: "body larger than the limit of 3 bytes"},
		{name: "huge chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", err: `malformed chunk size "ffffffffffffffff"`},
		{name: "chunk over the limit", max: 3, in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n", err: "chunked body larger than the limit of 3 bytes"},
		{name: "bad chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", err: `malformed chunk size "zz"`},
		{name: "chunk without CRLF", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", err: "chunk not followed by CRLF"},
		{name: "chunked cut", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", err: "reading a chunk: unexpected EOF"},
		{name: "no last chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", err: "reading a chunk size: unexpected EOF"},
		{name: "long line", in: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxStatusAndHeaderLine) + "\r\n\r\n", err: "line longer than 8192 bytes"},
		{name: "many headers", in: "HTTP/1.1 200 OK\r\n" + strings.Repeat("X: y\r\n", maxHeaderLines+1) + "\r\n", err: "more than 100 header lines"},
		{name: "endless interim", in: strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 12), err: "too many interim 1xx responses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 1 << 20
			}
			code, body, err := readResponse(bufio.NewReaderSize(strings.NewReader(tc.in), maxStatusAndHeaderLine), max)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.code, code)
			require.Equal(t, tc.body, string(body))
		})
	}
}

// FuzzReadResponse feeds arbitrary bytes to the response parser: it must
// never panic, never return more than the limit, and agree with itself on
// the status code it returns.
func FuzzReadResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLIVE",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nLIVE\r\n0\r\nT: x\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\n\r\nINITIALIZING",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\n",
	} {
		f.Add([]byte(seed))
	}
	const max = 64
	f.Fuzz(func(t *testing.T, in []byte) {
		code, body, err := readResponse(bufio.NewReaderSize(strings.NewReader(string(in)), maxStatusAndHeaderLine), max)
		if err != nil {
			if code != 0 || body != nil {
				t.Fatalf("error %v with code %d and %d bytes of body", err, code, len(body))
			}
			return
		}
		if code < 200 || code > 999 {
			t.Fatalf("code %d accepted", code)
		}
		if len(body) > max {
			t.Fatalf("body of %d bytes over the limit %d", len(body), max)
		}
	})
}

func TestParseProbeURL(t *testing.T) {
	for raw, want := range map[string]string{
		"http://127.0.0.1:9901/server_info": "",
		"http://[::1]:9901/ready":           "",
		"http://localhost/ready":            "",
		"http://127.0.0.1:0/ready":          "port 0 out of range 1-65535",
		"http://127.0.0.1:65536/ready":      "port 65536 out of range 1-65535",
		"http://127.0.0.1:99999999999/x":    "port 99999999999 out of range 1-65535",
		"https://127.0.0.1:9901/ready":      "must be an http:// URL (for anything else use --ready-cmd)",
		"http:///ready":                     "has no host",
		"http://u:p@127.0.0.1:1/":           "user information is not supported",
		"http://127.0.0.1:x/":               `invalid port ":x" after host`,
	} {
		_, err := ParseURL(raw)
		if want == "" {
			require.NoError(t, err, raw)
		} else {
			require.EqualError(t, err, want, raw)
		}
	}
}

func TestReadyAnswer(t *testing.T) {
	const info = "http://127.0.0.1:9901/server_info"
	for _, tc := range []struct {
		name, url string
		code      int
		body      string
		epoch     int
		err       string
	}{
		{name: "/ready 200", url: "http://h:1/ready", code: 200, body: "LIVE\n"},
		{name: "/ready 503", url: "http://h:1/ready", code: 503, body: "PRE_INITIALIZING\n", err: `GET http://h:1/ready: status 503 "PRE_INITIALIZING"`},
		{name: "server_info live, epoch a number", url: info, code: 200, epoch: 2, body: `{"state":"LIVE","command_line_options":{"restart_epoch":2}}`},
		{name: "server_info live, epoch a string", url: info, code: 200, epoch: 2, body: `{"state":"LIVE","command_line_options":{"restart_epoch":"2"}}`},
		{name: "server_info of the old epoch", url: info, code: 200, epoch: 2, body: `{"state":"LIVE","command_line_options":{"restart_epoch":1}}`,
			err: "answered by restart_epoch 1, not 2"},
		{name: "server_info initializing", url: info, code: 200, epoch: 2, body: `{"state":"INITIALIZING","command_line_options":{"restart_epoch":2}}`,
			err: "epoch 2 is INITIALIZING"},
		{name: "server_info cut", url: info, code: 200, epoch: 2, body: `{"state":"LIVE","command_line_opt`, err: "/server_info does not parse: unexpected end of JSON input"},
		{name: "server_info not JSON", url: info, code: 200, body: "LIVE", err: "/server_info does not parse"},
		{name: "server_info without options", url: info, code: 200, body: `{"state":"LIVE"}`, err: "/server_info has no state or command_line_options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := readyAnswer(tc.url, tc.code, []byte(tc.body), tc.epoch)
			if tc.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.err)
			}
		})
	}
}
