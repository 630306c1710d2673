package integration

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Scenario 3: rotating the access log (mv, then SIGUSR1 to the restarter)
// under traffic loses and duplicates no request's line, and every live
// epoch reopens its log.
func TestLogRotationUnderLoad(t *testing.T) {
	t.Parallel()
	// Given two live epochs (the old one kept by a long parent-shutdown
	// time) and clients hammering the listener,
	sb := newSandbox(t, `fakeenvoy --base-id "$BASE_ID" --parent-shutdown-time-s 60`+"\n")
	r := sb.start()
	e0, _ := sb.waitLive(0)
	r.Signal(syscall.SIGHUP)
	e1, _ := sb.waitLive(1)
	clients := fakeenvoytest.StartLoad(t, sb.addr(), 4)
	proctest.WaitFor(t, wait, "requests logged", func() bool { return len(clients.Answered()) >= 50 })

	// when the operator moves the log aside and sends SIGUSR1 to the restarter,
	rotated := sb.accessLog + ".1"
	require.NoError(t, os.Rename(sb.accessLog, rotated))
	r.Signal(syscall.SIGUSR1)

	// then the restarter forwards it to both epochs, both reopen their logs,
	for _, e := range []epoch{e0, e1} {
		r.WaitLine(`sending SIGUSR1 to PID=`+strconv.Itoa(e.PID)+`$`, 1, wait)
		r.WaitLine(epochLine(e.PID, `caught SIGUSR1\. Reopening access logs\.$`), 1, wait)
	}
	// a new access.log is created and the live epoch's requests go to it,
	proctest.WaitFor(t, wait, "a new access.log", func() bool { return fileExists(sb.accessLog) })
	before := len(clients.Answered())
	proctest.WaitFor(t, wait, "requests after the reopen", func() bool { return len(clients.Answered()) >= before+50 })
	clients.Finish()
	require.Empty(t, clients.Failed(), "failed requests")
	require.Len(t, sb.forked(), 2, "no epoch started or lost")
	require.True(t, proctest.Alive(e0.PID) && proctest.Alive(e1.PID))

	// and, once the epochs are stopped (Envoy buffers its log files and
	// writes what is left at exit; lines buffered at the reopen go to the
	// new file), every answered request has exactly one line across the two
	// files, none lost or doubled.
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{}, r.Wait(wait))
	old, current := requestIDs(t, rotated), requestIDs(t, sb.accessLog)
	require.NotEmpty(t, old)
	require.NotEmpty(t, current)
	count := map[string]int{}
	for _, id := range append(old, current...) {
		count[id]++
	}
	for _, id := range clients.Answered() {
		require.Equal(t, 1, count[id], "access log lines for %s", id)
		delete(count, id)
	}
	require.Empty(t, count, "lines for requests never answered")
}

// Scenario 17: a log rotation (SIGUSR1 to the restarter) while an epoch is
// starting does not kill it. Envoy installs its SIGUSR1 handler only in
// RunHelper, after its config is loaded (source/server/server.cc); until
// then SIGUSR1's default action kills it, and a new epoch killed so leaves
// INITIALIZING set. Its epochs taking 2 s to load their config
// (--fake-config-load-delay), the restarter must hold the signal for a
// starting epoch and deliver it once the epoch can take it.
func TestLogRotationWhileAnEpochStarts(t *testing.T) {
	t.Parallel()
	const body = `fakeenvoy --base-id "$BASE_ID" --fake-config-load-delay 2s` + "\n"
	caught := `caught SIGUSR1\. Reopening access logs\.$`

	t.Run("epoch 0", func(t *testing.T) {
		t.Parallel()
		// Given a restarter that has just forked epoch 0,
		sb := newSandbox(t, body)
		r := sb.start()
		e0 := sb.waitForked(0)
		// when the operator sends it SIGUSR1 right then,
		r.Signal(syscall.SIGUSR1)
		// then epoch 0 is not killed: it comes up and reopens its logs,
		r.WaitLine(epochLine(e0.PID, startedRE), 1, wait)
		r.WaitLine(epochLine(e0.PID, caught), 1, wait)
		// and the restarter serves on,
		require.True(t, r.Alive(), "restarter running")
		require.Contains(t, httpGet(t, "http://"+sb.addr()+"/"), "fakeenvoy epoch=0")
		// until SIGTERM stops it cleanly; epoch 0 got the signal once.
		r.Signal(syscall.SIGTERM)
		require.Equal(t, proctest.Exit{}, r.Wait(wait))
		require.Len(t, r.Lines(epochLine(e0.PID, caught)), 1)
		require.Empty(t, r.Lines(`was killed with signal=`))
		sb.requireAllGone()
	})

	t.Run("epoch 1", func(t *testing.T) {
		t.Parallel()
		// Given epoch 0 live and a restarter that has just forked epoch 1,
		sb := newSandbox(t, body)
		r := sb.start()
		e0, _ := sb.waitLive(0)
		r.Signal(syscall.SIGHUP)
		e1 := sb.waitForked(1)
		// when the operator sends it SIGUSR1 right then,
		r.Signal(syscall.SIGUSR1)
		// then epoch 1 is not killed: it comes up and reopens its logs,
		// and epoch 0, live, reopens its own,
		r.WaitLine(epochLine(e1.PID, startedRE), 1, wait)
		r.WaitLine(epochLine(e1.PID, caught), 1, wait)
		r.WaitLine(epochLine(e0.PID, caught), 1, wait)
		// and the restarter serves on,
		require.True(t, r.Alive(), "restarter running")
		require.Contains(t, httpGet(t, "http://"+sb.addr()+"/"), "fakeenvoy epoch=")
		// until SIGTERM stops it cleanly; each epoch got the signal once,
		// and none was killed by it. (An epoch may be killed by the stop's
		// own TERM: one already exiting, on its child's request, has
		// dropped its handler, as Envoy's dispatcher does; that is part of
		// the stop, exit 0.)
		r.Signal(syscall.SIGTERM)
		require.Equal(t, proctest.Exit{}, r.Wait(wait))
		require.Len(t, r.Lines(epochLine(e0.PID, caught)), 1)
		require.Len(t, r.Lines(epochLine(e1.PID, caught)), 1)
		require.Empty(t, r.Lines(`was killed with signal=(10|6|9)$`))
		sb.requireAllGone()
	})
}

var requestIDRE = regexp.MustCompile(`"(req-\d+)"`)

// requestIDs returns the x-request-id of every line of an access log.
func requestIDs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var ids []string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		m := requestIDRE.FindStringSubmatch(line)
		require.NotNil(t, m, "access log line without a request id: %q", line)
		ids = append(ids, m[1])
	}
	return ids
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
