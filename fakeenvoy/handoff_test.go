package main

import (
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Given epoch 0 serving under concurrent load, when epoch 1 hot restarts
// it, then no request is refused or reset, epoch 0 drains and exits 0,
// every request is logged exactly once, and after epoch 1 exits nothing
// of the sandbox is left behind.
func TestHandOffUnderLoadLosesNothing(t *testing.T) {
	sb := newSandbox(t)
	e0 := sb.start(0, "-c", sb.config("e0.yaml", 0), "--fake-state-path", sb.Path("state.json"))
	st0 := readState(t, sb.Path("state.json"), 0)
	e0.WaitLine(startedLine, 1, wait)
	_, port, err := net.SplitHostPort(st0.Listeners["web"])
	require.NoError(t, err)
	p, _ := strconv.Atoi(port)

	l := fakeenvoytest.StartLoad(t, st0.Listeners["web"], 8)
	proctest.WaitFor(t, wait, "load on epoch 0", func() bool { return len(l.Answered()) > 50 })

	e1 := sb.start(1, "-c", sb.config("e1.yaml", p), "--fake-state-path", sb.Path("state.json"),
		"--fake-drain-time", "200ms", "--fake-parent-shutdown-time", "500ms")
	e1.WaitLine(regexp.QuoteMeta("listener 'web' on "+st0.Listeners["web"]+" (from parent)"), 1, wait)
	e0.WaitLine("shutting down admin due to child startup", 1, wait)
	e0.WaitLine("closing and draining listeners", 1, wait)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait), "the drained parent exits 0")
	assert.Contains(t, e0.Output(), "shutting down due to child request")
	proctest.WaitFor(t, wait, "load served by epoch 1", func() bool { return l.Served(1) > 0 })
	before := len(l.Answered())
	proctest.WaitFor(t, wait, "more load on epoch 1", func() bool { return len(l.Answered()) > before+50 })
	l.Finish()

	assert.Empty(t, l.Failed(), "refused or reset requests during the hand-off")
	assert.Positive(t, l.Served(0))
	st1 := readState(t, sb.Path("state.json"), 1)
	assert.Equal(t, st0.Listeners["web"], st1.Listeners["web"], "the same socket, the same address")

	e1.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e1.Wait(wait))
	assertAccessLogOnce(t, []string{sb.Path("access.log")}, len(l.Answered()))
	assert.Empty(t, sb.leftovers(), "sockets or shared memory left after the last epoch")
}

// assertAccessLogOnce checks that the files together hold exactly one line
// per successful request.
func assertAccessLogOnce(t *testing.T, paths []string, want int) {
	t.Helper()
	seen := map[string]int{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Split(line, `"`)
			require.GreaterOrEqual(t, len(f), 8, "access log line %q", line)
			seen[f[7]]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("request %s logged %d times", id, n)
		}
	}
	assert.Equal(t, want, len(seen), "access log lines")
}

// Given epochs 0 and 1 alive (1 LIVE, 0 still draining), when epoch 2
// starts, then epoch 1 terminates epoch 0 at once: never more than three.
func TestThirdEpochTerminatesTheOldest(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRunning(0, "-c", cfg)
	e1 := sb.start(1, "-c", cfg, "--parent-shutdown-time-s", "600")
	e0.WaitLine("closing and draining listeners", 1, wait)
	require.True(t, e0.Alive())
	e2 := sb.start(2, "-c", cfg, "--parent-shutdown-time-s", "600")
	e1.WaitLine("terminating parent process", 1, wait)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
	assert.Contains(t, e0.Output(), "shutting down due to child request")
	e2.WaitLine(regexp.QuoteMeta("all dependencies initialized. starting workers"), 1, wait)
	assert.True(t, e1.Alive(), "epoch 1 drains until its parent shutdown time")
	e2.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e2.Wait(wait))
	assert.Equal(t, proctest.Exit{}, e1.Wait(wait), "a shutting-down epoch terminates its parent, as Envoy does")
	assert.Empty(t, sb.leftovers())
}
