// Package managers runs the shipped examples/ files: the snippets of
// docs/PROCESS-MANAGERS.md (and of the README, if it shows any) against the
// files, the systemd unit's commands against a stand-in for systemd's
// notify socket, examples/start_fakeenvoy.sh in a clean environment, and
// (with -tags managers, as root, with Debian's runit, s6, supervisor, monit,
// tini and dumb-init installed) every example under its real process
// manager. See README.md.
package managers

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

const wait = proctest.Timeout

func TestMain(m *testing.M) { proctest.Main(m) }

// examplesDir is the repository's examples/ directory (under Bazel, found
// through the runfiles path of one of its files).
func examplesDir(t testing.TB) string {
	return filepath.Dir(proctest.Runfile(t, "START_ENVOY_SH", "../../examples/start_envoy.sh"))
}

// install is one installed copy of shipped example files: their text with
// only the paths changed (/usr/local/bin/restarter, /etc/envoy, /run/envoy,
// /var/log/envoy, /var/log/supervisor) and the admin port (9901, taken by
// anything else on the host). Envoy is fakeenvoy behind bin/envoy, which
// adds the flags in fake-args (a scenario's Envoy that ignores SIGTERM).
type install struct {
	t         testing.TB
	dir       string // the root everything is installed under
	examples  string
	restarter string
	port      int // the listener's port
	adminPort int
	repl      *strings.Replacer
}

// newInstall makes the root (short, for unix socket paths), the bootstrap,
// the Envoy stand-in and start_envoy.sh under etc/, and removes it all,
// killing whatever still runs from it, when the test ends.
func newInstall(t testing.TB) *install {
	t.Helper()
	// Unix socket paths hold 107 bytes: under Bazel, whose TMPDIR is deep,
	// the root goes to /tmp.
	parent := os.TempDir()
	if len(parent) > 40 {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "mgr-")
	require.NoError(t, err)
	t.Cleanup(func() {
		killProcessesUnder(dir)
		os.RemoveAll(dir)
	})
	in := &install{
		t:         t,
		dir:       dir,
		examples:  examplesDir(t),
		restarter: proctest.Binary(t, "restarter"),
		port:      proctest.FreePort(t),
		adminPort: proctest.FreePort(t),
	}
	for _, sub := range []string{"bin", "etc", "run", "log"} {
		require.NoError(t, os.MkdirAll(in.path(sub), 0o755))
	}
	in.repl = strings.NewReplacer(
		"/usr/local/bin/restarter", in.restarter,
		"/etc/envoy", in.path("etc"),
		"/run/envoy", in.path("run"),
		"/var/log/envoy", in.path("log"),
		"/var/log/supervisor", in.path("log"),
		"127.0.0.1:9901", "127.0.0.1:"+strconv.Itoa(in.adminPort),
	)
	in.writeConfig(true)
	// The managers give their programs an environment of their own: the
	// stand-in names the shared memory region log (proctest.Main) itself.
	// With a number in fill-lines, it first writes that many lines to
	// stderr (an Envoy logging at debug level).
	proctest.Script(t, in.path("bin"), "envoy",
		fmt.Sprintf("[ -s %[4]s ] && yes \"envoy filler line\" | head -n \"$(cat %[4]s)\" >&2\n%[1]s=%[2]q exec %[3]s $(cat %[5]s 2>/dev/null) \"$@\"\n",
			fakeenvoytest.RegionLogEnv, os.Getenv(fakeenvoytest.RegionLogEnv), proctest.Binary(t, "fakeenvoy"), in.path("fill-lines"), in.path("fake-args")))
	// start_envoy.sh, with Envoy at bin/envoy (a manager such as monit gives
	// its programs a PATH of its own) and without raising the host's
	// inotify limit, which a test must not touch.
	script := in.file("start_envoy.sh", "etc/start_envoy.sh")
	b, err := os.ReadFile(script)
	require.NoError(t, err)
	s := strings.NewReplacer(
		`ENVOY_BIN="${ENVOY_BIN:-envoy}"`, `ENVOY_BIN="${ENVOY_BIN:-`+in.path("bin/envoy")+`}"`,
		`${ENVOY_INOTIFY_MAX_USER_WATCHES:-524288}`, `${ENVOY_INOTIFY_MAX_USER_WATCHES:-}`,
	).Replace(string(b))
	require.NotEqual(t, string(b), s, "start_envoy.sh no longer has ENVOY_BIN's and the inotify limit's defaults")
	require.NoError(t, os.WriteFile(script, []byte(s), 0o755))
	return in
}

func (in *install) path(name string) string { return filepath.Join(in.dir, name) }

// file installs examples/src at dst (under the root), with its mode, and
// returns dst's path.
func (in *install) file(src, dst string) string {
	in.t.Helper()
	b, err := os.ReadFile(filepath.Join(in.examples, src))
	require.NoError(in.t, err)
	fi, err := os.Stat(filepath.Join(in.examples, src))
	require.NoError(in.t, err)
	path := in.path(dst)
	require.NoError(in.t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(in.t, os.WriteFile(path, []byte(in.repl.Replace(string(b))), fi.Mode().Perm()))
	return path
}

// writeConfig writes etc/envoy.yaml: a good bootstrap, or one Envoy (and
// the check, the start script in --mode validate) refuses.
func (in *install) writeConfig(good bool) {
	in.t.Helper()
	extra := ""
	if !good {
		extra = "not_a_bootstrap_field: 1\n"
	}
	in.writeConfigLogging(in.path("log/access.log"), extra)
}

// writeConfigLogging writes the bootstrap with its access log at path and
// extra appended: a path that cannot be opened passes --mode validate and
// fails the new epoch only after it took its parent's admin, as in Envoy.
func (in *install) writeConfigLogging(accessLog, extra string) {
	in.t.Helper()
	yaml := fakeenvoytest.Bootstrap{
		AdminPort: in.adminPort,
		Port:      in.port,
		Listener:  "web",
		Body:      "hello",
		AccessLog: accessLog,
	}.YAML() + extra
	require.NoError(in.t, os.WriteFile(in.path("etc/envoy.yaml"), []byte(yaml), 0o644))
}

// servingEpoch asks the listener which epoch answers; -1 when none does.
func (in *install) servingEpoch() int {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", in.port))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1
	}
	n, err := strconv.Atoi(resp.Header.Get("x-fakeenvoy-epoch"))
	if err != nil {
		return -1
	}
	return n
}

// running lists the live (not zombie) processes started from the install:
// whose command line names a file under etc/ (the restarter's start script,
// Envoy's config, the check).
func (in *install) running() []string {
	return processes(func(_ int, cmdline, _ string) bool { return strings.Contains(cmdline, in.path("etc")+"/") })
}

// requireNothingRunning waits until no process started from the install is
// left.
func (in *install) requireNothingRunning() {
	in.t.Helper()
	deadline := time.Now().Add(wait)
	for left := in.running(); len(left) > 0; left = in.running() {
		if time.Now().After(deadline) {
			in.t.Fatalf("still running after %v:\n%s", wait, strings.Join(left, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runCommand runs argv and returns its combined output, killing it if it
// takes longer than two waits.
func runCommand(argv []string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(2 * wait):
			cmd.Process.Kill()
		}
	}()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// processes returns "pid cmdline" of every live process match accepts,
// given its pid, command line (arguments joined by spaces) and working
// directory.
func processes(match func(pid int, cmdline, cwd string) bool) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 { // gone, or a zombie
			continue
		}
		cmdline := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if match(pid, cmdline, cwd) {
			found = append(found, fmt.Sprintf("%d %s", pid, cmdline))
		}
	}
	return found
}

// killProcessesUnder KILLs every process whose command line or working
// directory is under dir (managers, their supervisors, loggers, services),
// until none is left, or gives up after a few seconds.
func killProcessesUnder(dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		left := processes(func(pid int, cmdline, cwd string) bool {
			if strings.Contains(cmdline, dir) || strings.HasPrefix(cwd, dir) {
				syscall.Kill(pid, syscall.SIGKILL)
				return true
			}
			return false
		})
		if len(left) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
