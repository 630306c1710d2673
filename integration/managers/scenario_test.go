//go:build managers

package managers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// fakeArgs gives every later start of Envoy these extra fakeenvoy flags.
func (in *install) fakeArgs(args string) {
	require.NoError(in.t, os.WriteFile(in.path("fake-args"), []byte(args), 0o644))
}

// waitServing waits until epoch n answers on the listener.
func (in *install) waitServing(n int) {
	in.t.Helper()
	proctest.WaitFor(in.t, wait, fmt.Sprintf("epoch %d serving", n), func() bool { return in.servingEpoch() == n })
}

// manager drives one process manager running one installed example, with
// the manager's own commands.
type manager interface {
	// start starts the manager with the service, and returns once the
	// manager has started the restarter.
	start(t *testing.T)
	// hotRestart asks the manager for a hot restart.
	hotRestart(t *testing.T)
	// reopenLogs sends the restarter SIGUSR1 the manager's way.
	reopenLogs(t *testing.T)
	// stop stops the service and returns once the manager reports it down.
	stop(t *testing.T)
	// restarterPID is the pid of the restarter, as the manager reports it.
	restarterPID(t *testing.T) int
	// log is the restarter's output, as the manager keeps it.
	log(t *testing.T) string
	// killByTimeout starts the service again, stops it with a stop timeout
	// shorter than the restarter's --term-wait while Envoy ignores SIGTERM,
	// and returns once the manager has killed the restarter.
	killByTimeout(t *testing.T)
}

// logService is a manager whose example has a log service of its own.
type logService interface {
	logDown(t *testing.T)
	logUp(t *testing.T)
}

// requirePackage skips the test when the manager's command is missing: only
// where its Debian package cannot be installed. .ci/run installs them all
// and sets RESTARTER_MANAGERS_REQUIRED=1, which turns the skip into a
// failure.
func requirePackage(t *testing.T, pkg string, commands ...string) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("RESTARTER_MANAGERS_REQUIRED") != "" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("needs root (the managers run services as root, as on a host)")
	}
	for _, c := range commands {
		if _, err := exec.LookPath(c); err != nil {
			skip("%s not found: install Debian's %s package (apt-get install %s)", c, pkg, pkg)
		}
	}
}

// run runs a manager's command and returns its combined output; a failure
// fails the test.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runErr(name, args...)
	require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
	return out
}

// runErr runs a manager's command, bounded in time.
func runErr(name string, args ...string) (string, error) {
	return runCommand(append([]string{name}, args...))
}

// count is how many lines of log match re.
func count(log, re string) int {
	return len(regexp.MustCompile(`(?m)`+re).FindAllStringIndex(log, -1))
}

// waitLog waits until at least n lines of the manager's log match re.
func waitLog(t *testing.T, m manager, re string, n int) {
	t.Helper()
	proctest.WaitFor(t, wait, strconv.Itoa(n)+" log lines matching "+re, func() bool { return count(m.log(t), re) >= n })
}

// exercise takes one installed example under its manager through what an
// operator does: start, hot restart, log reopen, a refused bad config, the
// log service's restart, stop, and the manager's stop timeout.
func exercise(t *testing.T, in *install, m manager) {
	start := time.Now()
	defer func() { t.Logf("scenario took %v", time.Since(start).Round(time.Millisecond)) }()

	// Given the service started by its manager,
	m.start(t)
	in.waitServing(0)
	waitLog(t, m, `epoch 0 is ready`, 1)
	pid := m.restarterPID(t)

	t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), "hot restart")
	// a hot restart through the manager starts epoch 1, which takes over;
	m.hotRestart(t)
	waitLog(t, m, `epoch 1 is ready`, 1)
	in.waitServing(1)
	require.Equal(t, pid, m.restarterPID(t), "the restarter itself was restarted")

	t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), "log reopen")
	// SIGUSR1 reaches both epochs (epoch 0 drains, for Envoy's 15 minutes);
	m.reopenLogs(t)
	waitLog(t, m, `caught SIGUSR1`, 2)

	t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), "refused config")
	// a bad config is refused by the check, and epoch 1 keeps serving;
	in.writeConfig(false)
	m.hotRestart(t)
	waitLog(t, m, `check refused hot restart to epoch 2`, 1)
	require.Equal(t, 1, in.servingEpoch())
	require.Equal(t, pid, m.restarterPID(t))
	require.Zero(t, count(m.log(t), `forking and execing new child process at epoch 2`))
	in.writeConfig(true)

	t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), "log service")
	// the log service going down and up again loses no line;
	if ls, ok := m.(logService); ok {
		ls.logDown(t)
		m.reopenLogs(t) // written while nobody reads
		ls.logUp(t)
		waitLog(t, m, `caught SIGUSR1`, 4)
		waitLog(t, m, `got SIGUSR1`, 2)
		waitLog(t, m, `sending SIGUSR1 to PID=`, 4)
		stalledLogService(t, in, m, ls)
	}

	t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), "stop")
	// stopping stops every epoch, and the restarter exits 0;
	m.stop(t)
	waitLog(t, m, `exiting with code=0`, 1)
	log := m.log(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(regexp.MustCompile(`(?m)^.*filler.*\n`).ReplaceAllString(m.log(t), ""))
		}
	})
	require.Equal(t, count(log, `forking and execing new child process at epoch`), count(log, `exited with code=0`), "every epoch exits 0")
	in.requireNothingRunning()

	t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), "stop timeout")
	// and a manager whose stop timeout runs out first KILLs the restarter,
	// and no Envoy outlives it.
	in.fakeArgs("--fake-ignore-sigterm")
	m.killByTimeout(t)
	in.requireNothingRunning()
}

// rotatedLog is a log directory kept by svlogd or s6-log: the rotated
// files (named @ and a TAI64N timestamp, so in order) and then current.
func rotatedLog(dir string) string {
	rotated, _ := filepath.Glob(filepath.Join(dir, "@*"))
	var b strings.Builder
	for _, name := range append(rotated, filepath.Join(dir, "current")) {
		text, _ := os.ReadFile(name)
		b.Write(text)
	}
	return b.String()
}

// stalledLogService: with the log service down, runsv (or s6-supervise)
// still holds the pipe, which fills: a hot restart whose Envoy writes more
// than the pipe holds (100000 lines, 1.8 MB) completes anyway, the restarter
// relaying its output through a bounded buffer; once the log service is
// back, it gets whole lines and the report of the lines dropped meanwhile.
func stalledLogService(t *testing.T, in *install, m manager, ls logService) {
	t.Helper()
	ls.logDown(t)
	require.NoError(t, os.WriteFile(in.path("fill-lines"), []byte("100000"), 0o644))
	began := time.Now()
	m.hotRestart(t)
	in.waitServing(2)
	t.Logf("hot restart with the log service down: epoch 2 serving after %v", time.Since(began).Round(time.Millisecond))
	require.NoError(t, os.Remove(in.path("fill-lines")))
	ls.logUp(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(regexp.MustCompile(`(?m)^.*filler.*\n`).ReplaceAllString(m.log(t), ""))
		}
	})
	waitLog(t, m, `dropped \d+ line\(s\) of the epochs' output: the log reader was not reading$`, 1)
	for _, line := range regexp.MustCompile(`(?m)^.*filler.*$`).FindAllString(m.log(t), -1) {
		require.Regexp(t, `^[-0-9@a-f:._ ]+ envoy filler line$`, line, "a relayed line cut or mixed")
	}
}
