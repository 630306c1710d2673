package main

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// fileLines reads path's complete lines.
func fileLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
}

func fileHas(path, text string) func() bool {
	return func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(b), text)
	}
}

// Mirrors source/common/access_log/access_log_manager_impl.cc
// (AccessLogFileImpl: buffered lines, the flush thread that writes the
// first one at once, the --file-flush-min-size-kb threshold and the
// --file-flush-interval-msec timer) as the --log-path log goes through it
// (source/common/common/logger_delegates.cc FileSinkDelegate, made in
// InstanceImpl's constructor in source/server/server.cc), and
// source/common/common/logger.cc, whose loggers flush on a critical line.
func TestLogPathIsBufferedAsEnvoysFiles(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)

	// Given an epoch logging to a file, with an hour-long flush timer and
	// a 4 KiB threshold,
	log0 := sb.Path("e0.log")
	e0 := sb.start(0, "-c", cfg, "--log-path", log0, "--fake-state-path", sb.Path("s0.json"),
		"--file-flush-interval-msec", "3600000", "--file-flush-min-size-kb", "4")
	st := readState(t, sb.Path("s0.json"), 0)
	// then its first line is on disk at once (the flush thread that line
	// started found it, and any line that came meanwhile, and wrote them),
	proctest.WaitFor(t, wait, "the first line", fileHas(log0, "initializing epoch 0"))
	first := fileLines(t, log0)
	// and what it logs next stays buffered;
	admin := "http://" + st.AdminAddress
	code, _ := get(t, admin+"/healthcheck/fail")
	require.Equal(t, 405, code)
	assert.Equal(t, first, fileLines(t, log0), "buffered")
	assert.False(t, fileHas(log0, "mutates state")())
	// when it logs more than 4 KiB (an error line per mutating GET),
	for range 30 {
		code, _ := get(t, admin+"/healthcheck/fail")
		require.Equal(t, 405, code)
	}
	// then the buffer goes out without waiting for the timer.
	proctest.WaitFor(t, wait, "the buffer past 4 KiB", fileHas(log0, `admin path "/healthcheck/fail" mutates state`))

	// Given the same epoch killed, when epoch 1 cannot reach it and aborts,
	// then its critical line flushed the retries buffered before it.
	e0.Signal(syscall.SIGKILL)
	e0.Wait(wait)
	log1 := sb.Path("e1.log")
	e1 := sb.start(1, "-c", cfg, "--log-path", log1, "--file-flush-interval-msec", "3600000",
		"--fake-hot-restart-retry-delay", "5ms")
	assert.Equal(t, proctest.Exit{Signal: syscall.SIGABRT}, e1.Wait(wait))
	lines := fileLines(t, log1)
	require.NotEmpty(t, lines)
	assert.Contains(t, lines[len(lines)-1], "[critical][assert]")
	assert.Contains(t, lines[len(lines)-1], "hot restart sendmsg() failed: returned -1, errno 111")
	assert.Equal(t, 10, strings.Count(strings.Join(lines, ""), "hot restart sendmsg() connection refused, retrying"))
	assert.NotContains(t, e1.Output(), "retrying", "nothing on stderr but what Envoy prints there")

	// Given a new epoch 0 with a 50 ms timer, the timer writes its lines
	// while it runs.
	log2 := sb.Path("e2.log")
	e2 := sb.start(0, "-c", cfg, "--log-path", log2, "--file-flush-interval-msec", "50")
	proctest.WaitFor(t, wait, "lines written by the timer", fileHas(log2, startedLine))
	e2.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e2.Wait(wait))
	lines = fileLines(t, log2)
	assert.True(t, strings.HasSuffix(lines[len(lines)-1], "] exiting"), "flushed at exit: %q", lines[len(lines)-1])
}
