//go:build managers

package managers

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// TestS6 runs examples/s6 (run, notification-fd, data/check, timeout-kill,
// finish, log/run) under s6-svscan, driven with s6-svc.
func TestS6(t *testing.T) {
	requirePackage(t, "s6", "s6-svscan", "s6-svc", "s6-svstat", "s6-svwait", "s6-log", "s6-notifyoncheck")
	requirePackage(t, "curl", "curl")
	t.Parallel()
	in := newInstall(t)
	exercise(t, in, &s6{in: in, service: in.path("scan/envoy")})
}

type s6 struct {
	in      *install
	service string
}

func (s *s6) start(t *testing.T) {
	for _, f := range []string{"run", "notification-fd", "data/check", "timeout-kill", "finish", "log/run"} {
		s.in.file("s6/"+f, "scan/envoy/"+f)
	}
	proctest.Start(t, proctest.Options{Dir: s.in.dir}, "s6-svscan", s.in.path("scan"))
	// Ready as s6 sees it: notification-fd, written by s6-notifyoncheck
	// once data/check passes.
	proctest.WaitFor(t, wait, "s6-supervise running envoy", func() bool {
		_, err := runErr("s6-svok", s.service)
		return err == nil
	})
	run(t, "s6-svwait", "-U", "-t", strconv.Itoa(int(wait.Milliseconds())), s.service)
}

func (s *s6) hotRestart(t *testing.T) { run(t, "s6-svc", "-h", s.service) }
func (s *s6) reopenLogs(t *testing.T) { run(t, "s6-svc", "-1", s.service) }

func (s *s6) stop(t *testing.T) {
	run(t, "s6-svc", "-wD", "-T", "40000", "-d", s.service)
}

func (s *s6) restarterPID(t *testing.T) int {
	pid, err := strconv.Atoi(strings.TrimSpace(run(t, "s6-svstat", "-p", s.service)))
	require.NoError(t, err)
	require.Positive(t, pid, "s6-svstat: the service is not running")
	return pid
}

func (s *s6) log(t *testing.T) string {
	return rotatedLog(s.in.path("log"))
}

func (s *s6) logDown(t *testing.T) { run(t, "s6-svc", "-wd", "-T", "10000", "-d", s.service+"/log") }
func (s *s6) logUp(t *testing.T)   { run(t, "s6-svc", "-wu", "-T", "10000", "-u", s.service+"/log") }

// killByTimeout: timeout-kill is s6-supervise's stop timeout; 1 s, shorter
// than --term-wait=30s, is the misconfiguration the example warns about.
func (s *s6) killByTimeout(t *testing.T) {
	require.NoError(t, os.WriteFile(filepath.Join(s.service, "timeout-kill"), []byte("1000\n"), 0o644))
	run(t, "s6-svc", "-wU", "-T", strconv.Itoa(int(wait.Milliseconds())), "-u", s.service)
	s.in.waitServing(0)
	pid := s.restarterPID(t)
	run(t, "s6-svc", "-wD", "-T", "10000", "-d", s.service)
	proctest.WaitFor(t, wait, "the restarter killed", func() bool { return !proctest.Alive(pid) })
	require.Equal(t, 1, count(s.log(t), `exiting with code=`), "the killed restarter logged an exit")
}
