//go:build managers

package managers

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// TestSupervisord runs examples/supervisord/envoy.conf under supervisord,
// driven with supervisorctl.
func TestSupervisord(t *testing.T) {
	requirePackage(t, "supervisor", "supervisord", "supervisorctl")
	t.Parallel()
	in := newInstall(t)
	exercise(t, in, &supervisord{in: in, conf: in.path("supervisord.conf")})
}

type supervisord struct {
	in   *install
	conf string
}

// start runs supervisord in the foreground with a main config of its own
// (what Debian's /etc/supervisor/supervisord.conf holds) that includes the
// example, as Debian's includes conf.d/*.conf.
func (s *supervisord) start(t *testing.T) {
	s.in.file("supervisord/envoy.conf", "conf.d/envoy.conf")
	main := fmt.Sprintf(`[unix_http_server]
file=%[1]s/supervisor.sock
chmod=0700

[supervisord]
nodaemon=true
user=root
logfile=%[1]s/supervisord.log
pidfile=%[1]s/supervisord.pid
childlogdir=%[1]s/log

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%[1]s/supervisor.sock

[include]
files = %[1]s/conf.d/*.conf
`, s.in.dir)
	require.NoError(t, os.WriteFile(s.conf, []byte(main), 0o644))
	proctest.Start(t, proctest.Options{Dir: s.in.dir}, "supervisord", "-c", s.conf)
	proctest.WaitFor(t, wait, "supervisord running envoy", func() bool {
		out, _ := runErr("supervisorctl", "-c", s.conf, "status", "envoy")
		return strings.Contains(out, "RUNNING")
	})
}

func (s *supervisord) ctl(t *testing.T, args ...string) string {
	return run(t, "supervisorctl", append([]string{"-c", s.conf}, args...)...)
}

func (s *supervisord) hotRestart(t *testing.T) { s.ctl(t, "signal", "HUP", "envoy") }
func (s *supervisord) reopenLogs(t *testing.T) { s.ctl(t, "signal", "USR1", "envoy") }

func (s *supervisord) stop(t *testing.T) {
	require.Contains(t, s.ctl(t, "stop", "envoy"), "envoy: stopped")
	proctest.WaitFor(t, wait, "supervisord: stopped (exit status 0)", func() bool {
		b, _ := os.ReadFile(s.in.path("supervisord.log"))
		return strings.Contains(string(b), "stopped: envoy (exit status 0)")
	})
}

func (s *supervisord) restarterPID(t *testing.T) int {
	pid, err := strconv.Atoi(strings.TrimSpace(s.ctl(t, "pid", "envoy")))
	require.NoError(t, err)
	require.Positive(t, pid)
	return pid
}

func (s *supervisord) log(t *testing.T) string {
	b, _ := os.ReadFile(s.in.path("log/envoy.log"))
	return string(b)
}

// killByTimeout: stopwaitsecs=1, shorter than --term-wait=30s, is the
// misconfiguration the example warns about; killasgroup takes Envoy too.
func (s *supervisord) killByTimeout(t *testing.T) {
	path := s.in.path("conf.d/envoy.conf")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	short := strings.Replace(string(b), "\nstopwaitsecs=45\n", "\nstopwaitsecs=1\n", 1)
	require.NotEqual(t, string(b), short, "the example has no stopwaitsecs=45")
	require.NoError(t, os.WriteFile(path, []byte(short), 0o644))
	s.ctl(t, "update") // the changed program is started again (autostart)
	s.in.waitServing(0)
	pid := s.restarterPID(t)
	require.Contains(t, s.ctl(t, "stop", "envoy"), "envoy: stopped")
	proctest.WaitFor(t, wait, "the restarter killed", func() bool { return !proctest.Alive(pid) })
	b, _ = os.ReadFile(s.in.path("supervisord.log"))
	require.Contains(t, string(b), "killing 'envoy' (", "supervisord did not KILL:\n%s", b)
	require.Equal(t, 1, count(s.log(t), `exiting with code=`), "the killed restarter logged an exit")
}
