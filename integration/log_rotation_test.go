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

	// and every answered request has exactly one line across the two files
	// (fakeenvoy writes it before it answers), none lost or doubled.
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
	require.Len(t, sb.forked(), 2, "no epoch started or lost")
	require.True(t, proctest.Alive(e0.PID) && proctest.Alive(e1.PID))
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
