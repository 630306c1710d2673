package main

import (
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Mirrors source/exe/main_common.cc (--mode init_only builds the server,
// InstanceImpl in source/server/server.cc, and returns without running
// it) and source/server/admin/admin.cc startHttpListener, which writes
// --admin-address-path as the admin binds during initialisation: an
// init_only epoch asks its parent to shut its admin down, binds its admin
// and writes the address, takes over the listen sockets, and exits 0 with
// INITIALIZING still set and its parent never told to drain.
func TestInitOnlyInitializesTheServer(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)

	// Given no parent, init_only writes the admin's address and exits 0.
	alone := sb.start(0, "-c", cfg, "--mode", "init_only", "--admin-address-path", sb.Path("admin0"))
	assert.Equal(t, proctest.Exit{}, alone.Wait(wait))
	b, err := os.ReadFile(sb.Path("admin0"))
	require.NoError(t, err)
	_, _, err = net.SplitHostPort(string(b))
	assert.NoError(t, err, "ip:port, as Envoy writes it: %q", b)
	assert.Contains(t, alone.Output(), "admin address: "+string(b))
	assert.Contains(t, alone.Output(), "] exiting")
	assert.NotContains(t, alone.Output(), "starting main dispatch loop")
	assert.True(t, sb.initializingFlag(), "the workers never started")

	// Given a serving epoch 0, an init_only epoch 1 shuts its admin down,
	// takes its listen socket, and leaves it serving, undrained.
	e0 := sb.start(0, "-c", cfg, "--fake-state-path", sb.Path("s0.json"), "--fake-parent-shutdown-time", "1h")
	st0 := readState(t, sb.Path("s0.json"), 0)
	e0.WaitLine(startedLine, 1, wait)
	_, port, err := net.SplitHostPort(st0.Listeners["web"])
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	e1 := sb.start(1, "-c", sb.config("c1.yaml", p), "--mode", "init_only", "--admin-address-path", sb.Path("admin1"))
	assert.Equal(t, proctest.Exit{}, e1.Wait(wait))
	assert.FileExists(t, sb.Path("admin1"))
	assert.Contains(t, e1.Output(), "listener 'web' on "+st0.Listeners["web"]+" (from parent)")
	e0.WaitLine("shutting down admin due to child startup", 1, wait)
	assert.NotContains(t, e0.Output(), "closing and draining listeners")
	assert.True(t, sb.initializingFlag())
	code, _ := get(t, "http://"+st0.Listeners["web"]+"/")
	assert.Equal(t, 200, code, "epoch 0 serves on")
	_, err = net.Dial("tcp", st0.AdminAddress)
	assert.Error(t, err, "without its admin")
}
