//go:build managers

package managers

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// TestRunit runs examples/runit (run and log/run) under runsvdir, driven
// with sv.
func TestRunit(t *testing.T) {
	requirePackage(t, "runit", "runsvdir", "runsv", "sv", "svlogd")
	t.Parallel()
	in := newInstall(t)
	exercise(t, in, &runit{in: in, service: in.path("service/envoy")})
}

type runit struct {
	in      *install
	service string
}

func (r *runit) start(t *testing.T) {
	r.in.file("runit/run", "service/envoy/run")
	r.in.file("runit/log/run", "service/envoy/log/run")
	r.in.file("runit/finish", "service/envoy/finish")
	proctest.Start(t, proctest.Options{Dir: r.in.dir}, "runsvdir", "-P", r.in.path("service"))
	proctest.WaitFor(t, wait, "runsv supervising envoy", func() bool {
		out, err := runErr("sv", "status", r.service)
		return err == nil && strings.HasPrefix(out, "run: ")
	})
}

func (r *runit) hotRestart(t *testing.T) { run(t, "sv", "hup", r.service) }
func (r *runit) reopenLogs(t *testing.T) { run(t, "sv", "1", r.service) }

func (r *runit) stop(t *testing.T) {
	out := run(t, "sv", "-w", "40", "down", r.service)
	require.Contains(t, out, "ok: down: ")
}

var runitPID = regexp.MustCompile(`^run: [^:]+: \(pid (\d+)\)`)

func (r *runit) restarterPID(t *testing.T) int {
	m := runitPID.FindStringSubmatch(run(t, "sv", "status", r.service))
	require.NotNil(t, m, "sv status: the service is not running")
	pid, _ := strconv.Atoi(m[1])
	return pid
}

func (r *runit) log(t *testing.T) string {
	return rotatedLog(r.in.path("log"))
}

func (r *runit) logDown(t *testing.T) {
	require.Contains(t, run(t, "sv", "-w", "10", "down", r.service+"/log"), "ok: down: ")
}

func (r *runit) logUp(t *testing.T) {
	require.Contains(t, run(t, "sv", "-w", "10", "up", r.service+"/log"), "ok: run: ")
}

// killByTimeout: `sv force-stop` KILLs the service after -w (7 s unless
// given), which is shorter than --term-wait=30s: the misconfiguration the
// example warns about, with -w 1.
func (r *runit) killByTimeout(t *testing.T) {
	run(t, "sv", "up", r.service)
	r.in.waitServing(0)
	pid := r.restarterPID(t)
	out, _ := runErr("sv", "-w", "1", "force-stop", r.service)
	require.Contains(t, out, "kill: ", "sv force-stop did not kill: %s", out)
	proctest.WaitFor(t, wait, "the restarter killed", func() bool { return !proctest.Alive(pid) })
	require.Equal(t, 1, count(r.log(t), `exiting with code=`), "the killed restarter logged an exit")
}
