//go:build managers

package managers

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// TestMonit runs examples/monit/envoy.monitrc under monit, driven with the
// monit command.
func TestMonit(t *testing.T) {
	requirePackage(t, "monit", "monit")
	t.Parallel()
	in := newInstall(t)
	exercise(t, in, &monit{in: in, rc: in.path("monitrc")})
}

type monit struct {
	in *install
	rc string
}

// start runs monit in the foreground, checking every second, with a
// control file of its own (what Debian's /etc/monit/monitrc holds) that
// includes the example, as Debian's includes conf.d/*.
func (m *monit) start(t *testing.T) {
	m.in.file("monit/envoy.monitrc", "conf.d/envoy")
	m.in.file("monit/envoy-monit.sh", "etc/envoy-monit.sh")
	rc := fmt.Sprintf(`set daemon 1
set logfile %[1]s/monit.log
set pidfile %[1]s/monit.pid
set idfile %[1]s/monit.id
set statefile %[1]s/monit.state
set httpd unixsocket %[1]s/monit.sock
    allow monit:monit
include %[1]s/conf.d/*
`, m.in.dir)
	require.NoError(t, os.WriteFile(m.rc, []byte(rc), 0o600)) // monit refuses a control file others can read
	proctest.Start(t, proctest.Options{Dir: m.in.dir}, "monit", "-c", m.rc, "-I")
	m.waitAction(t, `'envoy' process is running with pid`, 1)
}

func (m *monit) monit(t *testing.T, args ...string) string {
	return run(t, "monit", append([]string{"-c", m.rc}, args...)...)
}

// monitLog is monit's own log.
func (m *monit) monitLog() string {
	b, _ := os.ReadFile(m.in.path("monit.log"))
	return string(b)
}

// waitAction waits for monit to log the n-th line matching re.
func (m *monit) waitAction(t *testing.T, re string, n int) {
	m.waitActionFor(t, wait, re, n)
}

func (m *monit) waitActionFor(t *testing.T, timeout time.Duration, re string, n int) {
	proctest.WaitFor(t, timeout, "monit: "+re, func() bool { return count(m.monitLog(), re) >= n })
}

func (m *monit) hotRestart(t *testing.T) {
	restarts := count(m.monitLog(), `'envoy' (restart action done|failed to restart)`)
	m.monit(t, "restart", "envoy")
	m.waitAction(t, `'envoy' (restart action done|failed to restart)`, restarts+1)
}

// reopenLogs: monit has no command to signal a process.
func (m *monit) reopenLogs(t *testing.T) {
	require.NoError(t, syscall.Kill(m.restarterPID(t), syscall.SIGUSR1))
}

func (m *monit) stop(t *testing.T) {
	stops := count(m.monitLog(), `'envoy' stop action done`)
	m.monit(t, "stop", "envoy")
	m.waitAction(t, `'envoy' stop action done`, stops+1)
}

func (m *monit) restarterPID(t *testing.T) int {
	b, err := os.ReadFile(m.in.path("run/restarter.pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	return pid
}

func (m *monit) log(t *testing.T) string {
	b, _ := os.ReadFile(m.in.path("log/restarter.log"))
	return string(b)
}

// killByTimeout: monit never KILLs; its stop timeout (45 s) outlasts
// --term-wait=30s, so the restarter KILLs the stuck Envoy itself and exits
// 1, and the stop program returns.
func (m *monit) killByTimeout(t *testing.T) {
	starts := count(m.monitLog(), `'envoy' start action done`)
	m.monit(t, "start", "envoy")
	m.waitAction(t, `'envoy' start action done`, starts+1)
	m.in.waitServing(0)
	stops := count(m.monitLog(), `'envoy' stop action done`)
	m.monit(t, "stop", "envoy")
	m.waitActionFor(t, 45*time.Second, `'envoy' stop action done`, stops+1)
	log := m.log(t)
	require.Equal(t, 1, count(log, `children still running after --term-wait=30s`))
	require.Equal(t, 1, count(log, `exiting with code=1`))
}
