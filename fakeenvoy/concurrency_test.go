package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// listeningSockets returns the inodes of pid's TCP sockets listening on
// port, as /proc/net/tcp and /proc/PID/fd name them.
func listeningSockets(t *testing.T, pid, port int) []uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	require.NoError(t, err)
	listening := map[uint64]bool{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
			continue
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		require.NoError(t, err)
		listening[inode] = true
	}
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	require.NoError(t, err)
	var own []uint64
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil {
			continue
		}
		var inode uint64
		if _, err := fmt.Sscanf(link, "socket:[%d]", &inode); err == nil && listening[inode] {
			own = append(own, inode)
		}
	}
	return own
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)
	return port
}

// Mirrors source/server/listener_impl.cc ListenSocketFactoryImpl (a
// reuse-port listener has a socket per worker, --concurrency of them,
// source/server/options_impl.cc), source/server/listener_manager_impl.cc
// ProdListenerComponentFactory::createListenSocket (each asked from the
// parent with its worker_index, bound when the parent has none) and
// source/server/hot_restarting_parent.cc getListenSocketsForChild (a
// worker_index at or past the parent's own concurrency gets none): when
// --concurrency changes across hot restarts, the workers the parent had
// take its sockets over and the others bind new ones in the reuse-port
// group; the parent's sockets for workers the child lacks are not passed.
func TestConcurrencyAcrossHotRestarts(t *testing.T) {
	sb := newSandbox(t)
	// Given epoch 0 with two workers,
	e0 := sb.start(0, "-c", sb.config("c0.yaml", 0), "--concurrency", "2", "--fake-state-path", sb.Path("s0.json"),
		"--fake-parent-shutdown-time", "1h")
	st0 := readState(t, sb.Path("s0.json"), 0)
	e0.WaitLine(startedLine, 1, wait)
	web := st0.Listeners["web"]
	port := portOf(t, web)
	sockets0 := listeningSockets(t, e0.PID(), port)
	require.Len(t, sockets0, 2, "a socket per worker")
	cfg := sb.config("c.yaml", port)

	// when epoch 1 starts with three,
	e1 := sb.start(1, "-c", cfg, "--concurrency", "3", "--fake-parent-shutdown-time", "1h", "--fake-drain-time", "1h")
	// then workers 0 and 1 take the parent's sockets and worker 2 binds one,
	e1.WaitLine(startedLine, 1, wait)
	e1.WaitLine(regexp.QuoteMeta("listener 'web' on "+web+" (from parent)"), 1, wait)
	e1.WaitLine(regexp.QuoteMeta("listener 'web' on "+web+" (worker 1, from parent)"), 1, wait)
	e1.WaitLine(regexp.QuoteMeta("listener 'web' on "+web+" (worker 2, bound)"), 1, wait)
	sockets1 := listeningSockets(t, e1.PID(), port)
	require.Len(t, sockets1, 3)
	assert.Subset(t, sockets1, sockets0, "the same two sockets")
	code, _ := get(t, "http://"+web+"/")
	assert.Equal(t, 200, code)

	// and when epoch 2 starts with one worker,
	e2 := sb.start(2, "-c", cfg, "--concurrency", "1")
	e2.WaitLine(startedLine, 1, wait)
	e2.WaitLine(regexp.QuoteMeta("listener 'web' on "+web+" (from parent)"), 1, wait)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait), "the grandparent was terminated")
	// then it takes worker 0's socket only; epoch 1's other two are its
	// own, closed when it stops listening.
	sockets2 := listeningSockets(t, e2.PID(), port)
	require.Len(t, sockets2, 1)
	assert.Contains(t, sockets1, sockets2[0])
	assert.NotContains(t, e2.Output(), "worker 1")
	e1.WaitLine("closing and draining listeners", 1, wait)
	proctest.WaitFor(t, wait, "epoch 1's listen sockets closed", func() bool {
		return len(listeningSockets(t, e1.PID(), port)) == 0
	})
	code, _ = get(t, "http://"+web+"/")
	assert.Equal(t, 200, code)
	e2.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e2.Wait(wait))
}

// Mirrors source/server/listener_impl.cc ListenSocketFactoryImpl: a
// listener without reuse port has one socket, which every worker shares.
func TestConcurrencyWithoutReusePortSharesOneSocket(t *testing.T) {
	sb := newSandbox(t)
	p := sb.config("c.yaml", 0)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	doc := strings.Replace(string(b), "    address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n",
		"    address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n    enable_reuse_port: false\n", 1)
	require.Contains(t, doc, "enable_reuse_port: false")
	require.NoError(t, os.WriteFile(p, []byte(doc), 0o644))
	e0 := sb.start(0, "-c", p, "--concurrency", "4", "--fake-state-path", sb.Path("s.json"))
	st := readState(t, sb.Path("s.json"), 0)
	e0.WaitLine(startedLine, 1, wait)
	assert.Len(t, listeningSockets(t, e0.PID(), portOf(t, st.Listeners["web"])), 1)
	assert.NotContains(t, e0.Output(), "worker 1")
	_, body := get(t, "http://"+st.AdminAddress+"/server_info")
	info := parseServerInfo(t, body)
	assert.Equal(t, uint32(4), info.CommandLineOptions.Concurrency)
	assert.Equal(t, "10s", info.CommandLineOptions.FileFlushInterval, "Envoy's default")
}
