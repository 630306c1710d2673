package integration

import (
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Issue 14, defect 5: --base-id-path names a file the restarter may replace
// only when it holds nothing or a base id; anything else is a usage error,
// and is left as it was.
func TestBaseIDPathNeverDeletesWhatIsNotABaseID(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	yaml := sb.Path("envoy-copy.yaml")
	require.NoError(t, os.WriteFile(yaml, []byte("static_resources: {}\n"), 0o644))
	dir := sb.Path("empty-dir")
	require.NoError(t, os.Mkdir(dir, 0o755))

	for path, want := range map[string]string{
		yaml: `holds something other than a base id \(21 bytes starting "static_resources: {}"\); refusing to delete it`,
		dir:  `is a directory; give the path of a file`,
	} {
		code, out := runRestarter(t, "--base-id-path", path, sb.script)
		require.Equal(t, 2, code, out)
		require.Regexp(t, `\]\[error\]\[restarter\] flag -base-id-path: .* `+want, out)
		require.NotContains(t, out, "forking")
	}
	b, err := os.ReadFile(yaml)
	require.NoError(t, err)
	require.Equal(t, "static_resources: {}\n", string(b))
	require.DirExists(t, dir)
}

// Issue 14, defect 5: a stale base id the restarter cannot remove (a
// read-only file system) is fatal before epoch 0: later epochs would be
// given it as ENVOY_BASE_ID.
func TestStaleBaseIDOnReadOnlyFileSystemIsFatal(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	ro := sb.Path("ro")
	require.NoError(t, os.Mkdir(ro, 0o755))
	stale := ro + "/base-id"
	require.NoError(t, os.WriteFile(stale, []byte("123"), 0o644))

	// In a mount namespace of its own, the directory is bind-mounted
	// read-only over itself. The mount holding it is made private first so
	// nothing propagates back; not "/" itself, which is no mount point in a
	// chroot such as tools/bazel's (unshare's default would fail there).
	code, out := runCommand(t, "unshare", "-m", "--propagation", "unchanged", "sh", "-c",
		`mp=$(findmnt -n -o TARGET -T "$0") && mount --make-rprivate "$mp" && mount -o bind,ro "$0" "$0" && exec "$@"`,
		ro, proctest.Binary(t, "restarter"), "--base-id-path", stale, sb.script)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "base id file "+stale+": cannot remove the stale base id left by an earlier run (read-only file system)")
	require.NotContains(t, out, "forking")
	b, err := os.ReadFile(stale)
	require.NoError(t, err)
	require.Equal(t, "123", string(b))
}

// Issue 14, defect 5: the pid file is taken with flock: a second restarter
// fails without touching it, and a restarter removes it at exit only if it
// still holds its pid.
func TestPIDFileIsTakenNotClobbered(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	pidFile := sb.Path("restarter.pid")
	r := sb.start("--pid-file", pidFile)
	sb.waitLive(0)
	require.Equal(t, r.PID(), readPID(t, pidFile))

	// A second restarter with the same pid file fails, naming the first,
	code, out := runRestarter(t, "--pid-file", pidFile, sb.script)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "pid file "+pidFile+": held by another running restarter (PID="+strconv.Itoa(r.PID())+")")
	require.NotContains(t, out, "forking")
	// and leaves it as it was.
	require.Equal(t, r.PID(), readPID(t, pidFile))

	// The first removes it at exit,
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	require.NoFileExists(t, pidFile)

	// unless someone else wrote it meanwhile.
	r2 := sb.start("--pid-file", pidFile)
	require.Equal(t, r2.PID(), readPID(t, pidFile))
	r2.WaitLine(`forked new child process`, 1, wait)
	require.NoError(t, os.WriteFile(pidFile, []byte("999999\n"), 0o644))
	r2.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r2.Wait(wait))
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	require.Equal(t, "999999\n", string(b))
}

// Issue 14, defect 5 (and 8), and issue 19, defect 1: a pid file that is a
// directory is a usage error with a clear message.
func TestPIDFileThatIsADirectory(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	dir := sb.Path("pid-dir")
	require.NoError(t, os.Mkdir(dir, 0o755))
	code, out := runRestarter(t, "--pid-file", dir, sb.script)
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "flag -pid-file: "+dir+" is a directory; give the path of a file")
	require.NotContains(t, out, "forking")
}

// Issue 19, defect 1: --pid-file never follows a symlink and never
// overwrites a file that holds something other than a pid: either is a
// one-line usage error (exit 2), and the file is left as it was, before and
// after the restarter exits.
func TestPIDFileRefusesSymlinksAndForeignFiles(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	victim := sb.Path("victim.yaml")
	require.NoError(t, os.WriteFile(victim, []byte("static_resources: {}\n"), 0o644))
	link := sb.Path("pid.lnk")
	require.NoError(t, os.Symlink(victim, link))

	for path, want := range map[string]string{
		link:   `flag -pid-file: ` + link + ` is a symbolic link; refusing to follow it$`,
		victim: `flag -pid-file: ` + victim + ` holds something other than a pid \(21 bytes starting "static_resources: {}"\); refusing to overwrite it$`,
	} {
		code, out := runRestarter(t, "--pid-file", path, sb.script)
		require.Equal(t, 2, code, out)
		require.Regexp(t, `(?m)\]\[error\]\[restarter\] `+want, out)
		require.NotContains(t, out, "forking")
	}
	b, err := os.ReadFile(victim)
	require.NoError(t, err)
	require.Equal(t, "static_resources: {}\n", string(b))
	target, err := os.Readlink(link)
	require.NoError(t, err)
	require.Equal(t, victim, target)
}

// Issue 19, defect 1: the pid file of a run that died (SIGKILLed: it never
// removed it) is taken over, and removed at exit.
func TestPIDFileOfADeadRunIsTakenOver(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	pidFile := sb.Path("restarter.pid")
	dead := sb.start("--pid-file", pidFile)
	sb.waitLive(0)
	require.Equal(t, dead.PID(), readPID(t, pidFile))
	require.NoError(t, syscall.Kill(-dead.PID(), syscall.SIGKILL)) // its epochs too
	require.Equal(t, proctest.Exit{Signal: syscall.SIGKILL}, dead.Wait(wait))
	require.Equal(t, dead.PID(), readPID(t, pidFile), "left behind")

	r := sb.start("--pid-file", pidFile)
	r.WaitLine(`forked new child process`, 1, wait)
	require.Equal(t, r.PID(), readPID(t, pidFile))
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	require.NoFileExists(t, pidFile)
}

// Issue 14, defect 6: helpers run in a process group of their own, killed
// as a group on completion: what a check leaves in the background does not
// outlive it, and does not make it fail.
func TestCheckLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	check := sb.writeScript("check.sh", `sleep 300 &
echo $! >"$DIR/check-child.$RESTART_EPOCH.pid"
echo checked
`)
	r := sb.start("--check", check)
	sb.waitLive(0)
	r.Signal(syscall.SIGHUP)
	r.WaitLine(`check passed for epoch 1$`, 1, wait)
	sb.waitLive(1)
	sleepPID := readPID(t, sb.Path("check-child.1.pid"))
	killAtEnd(t, sleepPID)
	waitGone(t, sleepPID, "the check's background sleep")
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
}

// Issue 14, defect 6: a check that exits 0 while a process that left its
// process group holds its output is refused in words, not Go's.
func TestCheckWhoseOutputIsHeldOpen(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	// The escaped process writes its pid once it is in its own session, and
	// the check exits only then.
	check := sb.writeScript("check.sh", `pidfile="$DIR/escaped.$RESTART_EPOCH.pid"
setsid sh -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec sleep 300' "$pidfile" &
while [ ! -e "$pidfile" ]; do sleep 0.01; done
`)
	r := sb.start("--check", check)
	sb.waitLive(0)
	r.Signal(syscall.SIGHUP)
	killAtEnd(t, readPID(t, sb.Path("escaped.1.pid")))
	r.WaitLine(`check refused hot restart to epoch 1: .*check.sh: exited 0, but a process it started outside its process group still holds its output open$`, 1, wait)
	require.Empty(t, r.Lines(`WaitDelay`))
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
}

// Issue 14, defect 6: a check still running at shutdown is killed with its
// whole process group, not orphaned.
func TestShutdownKillsARunningCheck(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	check := sb.writeScript("check.sh", `echo $$ >"$DIR/check.$RESTART_EPOCH.pid"
sleep 300
`)
	r := sb.start("--check", check)
	sb.waitLive(0)
	r.Signal(syscall.SIGHUP)
	pid := readPID(t, sb.Path("check.1.pid"))
	killAtEnd(t, pid)
	var sleepPID int
	proctest.WaitFor(t, wait, "the check's sleep", func() bool {
		kids, _ := proctest.Children(pid)
		if len(kids) == 1 {
			sleepPID = kids[0]
		}
		return sleepPID != 0
	})
	killAtEnd(t, sleepPID)
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	waitGone(t, pid, "the check")
	waitGone(t, sleepPID, "the check's sleep")
}

// Issue 14, defect 7: processes adopted as subreaper are TERMed at shutdown,
// and KILLed after --term-wait if they ignore it.
func TestSubreaperStopsOrphansAtShutdown(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, `if [ "$RESTART_EPOCH" = 0 ]; then
	sh -c 'sleep 300 & echo $! >"$0/orphan.pid"' "$DIR"
	sh -c '(trap "" TERM; exec sleep 301) & echo $! >"$0/stubborn.pid"' "$DIR"
fi
fakeenvoy --base-id "$BASE_ID"
`)
	r := sb.start("--subreaper", "--term-wait", "1s")
	sb.waitLive(0)
	orphan, stubborn := readPID(t, sb.Path("orphan.pid")), readPID(t, sb.Path("stubborn.pid"))
	adopted, _ := proctest.Children(r.PID())
	for _, pid := range []int{orphan, stubborn} {
		require.Contains(t, adopted, pid, "PID %d adopted by the restarter", pid)
	}

	r.Signal(syscall.SIGTERM)

	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	r.WaitLine(`sending TERM to 2 process\(es\) left behind by the epochs: PIDs `, 1, wait)
	r.WaitLine(`PIDs \[`+strconv.Itoa(stubborn)+`\] left behind still running after --term-wait=1s; force killing them$`, 1, wait)
	require.False(t, proctest.Alive(orphan))
	require.False(t, proctest.Alive(stubborn))
}
