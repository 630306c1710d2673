package supervisor

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHTTPGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ready":
			w.Write([]byte("LIVE\n"))
		case "/big":
			w.Write([]byte(strings.Repeat("x", 100)))
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	code, body, err := httpGet(ctx, srv.URL+"/ready?x=1", 1<<20)
	require.NoError(t, err)
	require.Equal(t, 200, code)
	require.Equal(t, "LIVE\n", string(body))

	code, _, err = httpGet(ctx, srv.URL+"/initializing", 1<<20)
	require.NoError(t, err)
	require.Equal(t, 503, code)

	_, body, err = httpGet(ctx, srv.URL+"/big", 10)
	require.NoError(t, err)
	require.Len(t, body, 10, "body bounded")

	_, _, err = httpGet(ctx, "https://127.0.0.1:1/", 1<<20)
	require.ErrorContains(t, err, "only http:// URLs are supported")

	// Nothing listening: an error, not a hang.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, _, err = httpGet(ctx, "http://"+addr+"/ready", 1<<20)
	require.Error(t, err)

	// Not HTTP at all: an error naming the status line.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("SSH-2.0-OpenSSH\r\n"))
			c.Close()
		}
	}()
	_, _, err = httpGet(ctx, "http://"+ln.Addr().String()+"/", 1<<20)
	require.ErrorContains(t, err, `malformed status line "SSH-2.0-OpenSSH"`)
}
