//go:build managers

package managers

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// TestContainer runs each example Dockerfile's ENTRYPOINT as PID 1 of a
// PID namespace of its own (unshare --pid --fork, as a container runtime
// does), signalled as `docker kill -s` and `docker stop` signal it.
func TestContainer(t *testing.T) {
	for _, tc := range []struct{ dockerfile, pkg, command string }{
		{"Dockerfile", "", ""},
		{"Dockerfile.tini", "tini", "tini"},
		{"Dockerfile.dumb-init", "dumb-init", "dumb-init"},
	} {
		t.Run(tc.dockerfile, func(t *testing.T) {
			requirePackage(t, "util-linux", "unshare")
			if tc.pkg != "" {
				requirePackage(t, tc.pkg, tc.command)
			}
			t.Parallel()
			in := newInstall(t)
			exercise(t, in, &container{in: in, entrypoint: entrypoint(t, in, "container/"+tc.dockerfile)})
		})
	}
}

// entrypoint is the Dockerfile's ENTRYPOINT (exec form), paths changed.
func entrypoint(t *testing.T, in *install, dockerfile string) []string {
	b, err := os.ReadFile(filepath.Join(in.examples, dockerfile))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "ENTRYPOINT "); ok {
			var argv []string
			require.NoError(t, json.Unmarshal([]byte(in.repl.Replace(rest)), &argv))
			return argv
		}
	}
	t.Fatalf("%s: no ENTRYPOINT", dockerfile)
	return nil
}

type container struct {
	in         *install
	entrypoint []string
	proc       *proctest.Proc // unshare, whose child is PID 1
	logs       strings.Builder
}

func (c *container) start(t *testing.T) {
	if c.proc != nil {
		c.logs.WriteString(c.proc.Output())
	}
	c.proc = proctest.Start(t, proctest.Options{Dir: c.in.dir}, "unshare",
		append([]string{"--pid", "--fork", "--kill-child", "--"}, c.entrypoint...)...)
	c.pid1(t)
}

// pid1 is the host pid of the container's PID 1: unshare's child.
func (c *container) pid1(t *testing.T) int {
	var pid int
	proctest.WaitFor(t, wait, "the container's PID 1", func() bool {
		pids, _ := proctest.Children(c.proc.PID())
		if len(pids) == 1 {
			pid = pids[0]
		}
		return pid != 0
	})
	return pid
}

func (c *container) signal(t *testing.T, sig syscall.Signal) {
	require.NoError(t, syscall.Kill(c.pid1(t), sig))
}

func (c *container) hotRestart(t *testing.T) { c.signal(t, syscall.SIGHUP) }
func (c *container) reopenLogs(t *testing.T) { c.signal(t, syscall.SIGUSR1) }

// stop is `docker stop`: the container's STOPSIGNAL, and its exit status.
func (c *container) stop(t *testing.T) {
	c.signal(t, syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, c.proc.Wait(wait))
}

// restarterPID: the restarter is PID 1, or PID 1's only child.
func (c *container) restarterPID(t *testing.T) int {
	pid := c.pid1(t)
	if filepath.Base(c.entrypoint[0]) == "restarter" {
		return pid
	}
	pids, _ := proctest.Children(pid)
	require.Len(t, pids, 1, "PID 1's children")
	return pids[0]
}

func (c *container) log(t *testing.T) string { return c.logs.String() + c.proc.Output() }

// killByTimeout is `docker stop -t 1`: TERM, then KILL of PID 1 (and so of
// the whole PID namespace) when the grace period runs out; shorter than
// --term-wait=30s, the misconfiguration the example warns about.
func (c *container) killByTimeout(t *testing.T) {
	c.start(t)
	c.in.waitServing(0)
	c.signal(t, syscall.SIGTERM)
	waitLog(t, c, `sending TERM to PID=`, 3) // two epochs at the first stop, one now
	c.signal(t, syscall.SIGKILL)
	exit := c.proc.Wait(wait)
	require.NotEqual(t, proctest.Exit{Code: 0}, exit)
	require.Equal(t, 1, count(c.log(t), `exiting with code=`), "the killed restarter logged an exit")
}
