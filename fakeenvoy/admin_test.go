package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// keepAlive is one HTTP/1.1 connection a test holds open and sends its
// requests on, one after the other: what answers is whoever owns that
// connection, never a newer epoch.
type keepAlive struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return &keepAlive{conn: conn, r: bufio.NewReader(conn)}
}

// do sends one request and reads the whole response.
func (k *keepAlive) do(t *testing.T, method, path string) (*http.Response, string) {
	t.Helper()
	require.NoError(t, k.conn.SetDeadline(time.Now().Add(wait)))
	defer k.conn.SetDeadline(time.Time{})
	_, err := fmt.Fprintf(k.conn, "%s %s HTTP/1.1\r\nHost: fakeenvoy\r\nContent-Length: 0\r\n\r\n", method, path)
	require.NoError(t, err)
	resp, err := http.ReadResponse(k.r, nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	return resp, string(body)
}

// closedByPeer waits for the server to close the connection.
func (k *keepAlive) closedByPeer(t *testing.T) {
	t.Helper()
	require.NoError(t, k.conn.SetReadDeadline(time.Now().Add(wait)))
	_, err := k.r.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the server closed the connection")
}

// serverInfo is the part of /server_info the tests read.
type serverInfo struct {
	State              string `json:"state"`
	PID                int    `json:"pid"`
	CommandLineOptions struct {
		RestartEpoch      uint32 `json:"restart_epoch"`
		Concurrency       uint32 `json:"concurrency"`
		FileFlushInterval string `json:"file_flush_interval"`
	} `json:"command_line_options"`
}

func parseServerInfo(t *testing.T, body string) serverInfo {
	t.Helper()
	var info serverInfo
	require.NoError(t, json.Unmarshal([]byte(body), &info), "%q", body)
	return info
}

// fixedAdminConfig writes the sandbox's usual bootstrap with the admin on
// port, so that every epoch's admin has the same address.
func (sb *sandbox) fixedAdminConfig(name string, port int) string {
	sb.t.Helper()
	p, err := sb.WriteBootstrap(name, fakeenvoytest.Bootstrap{AdminPort: port, Listener: "web", Body: "hello\n", AccessLog: sb.Path("access.log")})
	require.NoError(sb.t, err)
	return p
}

// Mirrors source/server/server.cc InstanceImpl::shutdownAdmin, which stops
// the admin listener and closes its listening socket (AdminImpl::closeSocket
// in source/server/admin/admin.cc) but leaves the admin's connections alone,
// and source/server/admin/server_info_handler.cc, whose state comes from the
// init manager and the health check, not from a hot restart.
//
// Given epoch 0 with a keep-alive admin connection held open, when epoch 1
// hot restarts it and binds the same admin address, then epoch 0 keeps
// answering on the held connection, still LIVE, request after request,
// while a new connection to that address reaches epoch 1.
func TestAdminConnectionOutlivesShutdownAdmin(t *testing.T) {
	sb := newSandbox(t)
	port := proctest.FreePort(t)
	admin := "127.0.0.1:" + strconv.Itoa(port)
	cfg := sb.fixedAdminConfig("c.yaml", port)
	e0 := sb.startRunning(0, "-c", cfg)
	held := dialKeepAlive(t, admin)
	_, body := held.do(t, http.MethodGet, "/server_info")
	require.Equal(t, uint32(0), parseServerInfo(t, body).CommandLineOptions.RestartEpoch)

	// A long --fake-live-gap keeps epoch 1 from telling epoch 0 to drain,
	// so what is seen here is ShutdownAdmin alone.
	e1 := sb.start(1, "-c", cfg, "--fake-live-gap", "1h")
	e0.WaitLine("shutting down admin due to child startup", 1, wait)
	e1.WaitLine("all dependencies initialized. starting workers", 1, wait)

	for range 2 {
		resp, body := held.do(t, http.MethodGet, "/server_info")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.False(t, resp.Close, "the connection stays open")
		info := parseServerInfo(t, body)
		assert.Equal(t, uint32(0), info.CommandLineOptions.RestartEpoch, "answered by epoch 0")
		assert.Equal(t, e0.PID(), info.PID)
		assert.Equal(t, "LIVE", info.State)
	}
	resp, body := held.do(t, http.MethodGet, "/ready")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "LIVE\n", body)

	_, body = get(t, "http://"+admin+"/server_info")
	info := parseServerInfo(t, body)
	assert.Equal(t, uint32(1), info.CommandLineOptions.RestartEpoch, "a new connection reaches epoch 1")
	assert.Equal(t, e1.PID(), info.PID)
	assert.True(t, e0.Alive())
}
