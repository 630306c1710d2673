package osproc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/internal/procfs"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// startChild starts cmd, a child of the test process, and kills and reaps
// it when the test ends.
func startChild(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// readPID waits up to 10s for a shell to write a pid to path, and returns it.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, 10*time.Second, 5*time.Millisecond, "no pid in %s", path)
	return pid
}

// awaitGone waits up to 10s for pid, a process the test made, to be gone:
// reaped, by this process if it was re-parented here (the test process may
// be a subreaper: TestReapOrphans), or left a zombie of another's.
func awaitGone(t *testing.T, pid int) {
	t.Helper()
	require.Eventually(t, func() bool {
		var status unix.WaitStatus
		unix.Wait4(pid, &status, unix.WNOHANG, nil)
		st, err := procfs.ReadStat(pid)
		return err != nil || (!st.Running() && st.PPID != os.Getpid())
	}, 10*time.Second, 5*time.Millisecond, "PID=%d still there", pid)
}

func TestKillHelpersKillsTheirGroups(t *testing.T) {
	// Given a helper running, with a process it left in its group,
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		cmd := exec.Command("/bin/sh", "-c", "sleep 60 & echo $! > bg; echo $$ > pid; wait")
		cmd.Dir = dir
		_, err = testForker.RunHelper(ctx, cmd)
	}()
	bg := 0
	t.Cleanup(func() { // RunHelper kills its group on cancel
		cancel()
		<-done
		if bg != 0 {
			awaitGone(t, bg)
		}
	})
	pid := readPID(t, filepath.Join(dir, "pid"))
	bg = readPID(t, filepath.Join(dir, "bg"))
	require.True(t, testForker.IsHelper(pid))

	// when the helpers are killed (at shutdown),
	testForker.KillHelpers()

	// then the helper dies of SIGKILL, and what it left with it.
	select {
	case <-done:
		require.EqualError(t, err, "signal: killed")
	case <-time.After(10 * time.Second):
		t.Fatal("the helper still runs 10s after KillHelpers")
	}
	awaitGone(t, bg)
	require.False(t, testForker.IsHelper(pid))
}

func TestOrphansAreChildrenNeitherEpochsNorHelpers(t *testing.T) {
	// Given a child of this process (as a subreaper gets an orphan),
	cmd := exec.Command("sleep", "60")
	pid := startChild(t, cmd)

	// it is an orphan, unless it is an epoch or a helper.
	require.Contains(t, testForker.Orphans(nil), pid)
	require.NotContains(t, testForker.Orphans([]int{pid}), pid)
	helpers := &Forker{helpers: map[int]bool{pid: true}}
	require.NotContains(t, helpers.Orphans(nil), pid)
	require.NotContains(t, testForker.Orphans(nil), os.Getpid(), "never itself")

	// Once it has exited and been reaped, it is none.
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
	require.NotContains(t, testForker.Orphans(nil), pid)
}

func TestKillReportsWhatIsNotAnExitedChild(t *testing.T) {
	// Given a running child, a signal the kernel refuses is reported,
	// naming the signal and the pid; the child is left running.
	pid := startChild(t, exec.Command("sleep", "60"))
	err := Kill(pid, syscall.Signal(200))
	require.ErrorIs(t, err, unix.EINVAL)
	require.EqualError(t, err, "send signal 200 to PID="+strconv.Itoa(pid)+": invalid argument")
	require.True(t, procfs.Running(pid))
}

func TestIsStream(t *testing.T) {
	// Pipes and sockets are streams, whose reader can stall;
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	require.True(t, IsStream(w))
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	require.NoError(t, err)
	sock, peer := os.NewFile(uintptr(fds[0]), "sock"), os.NewFile(uintptr(fds[1]), "peer")
	defer sock.Close()
	defer peer.Close()
	require.True(t, IsStream(sock))

	// files and terminals-like devices are not, nor a file that cannot be
	// looked at.
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	require.NoError(t, err)
	require.False(t, IsStream(f))
	null, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer null.Close()
	require.False(t, IsStream(null))
	require.NoError(t, f.Close())
	require.False(t, IsStream(f))
}

func TestStartNamesAMissingInterpreter(t *testing.T) {
	// Given a start script whose #! interpreter does not exist,
	dir := t.TempDir()
	script := filepath.Join(dir, "start.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/nonexistent/bash -e\nexec envoy\n"), 0o755))

	// the exec failure names the interpreter, not the script, as missing:
	// by absolute path, and relative to the working directory.
	want := "its interpreter /nonexistent/bash (on its #! line) does not exist (errno=2 ENOENT)"
	_, err := testForker.Start(script, []string{"start.sh"}, nil, "", nil, nil)
	require.EqualError(t, err, "cannot execute "+script+": "+want)
	_, err = testForker.Start("./start.sh", []string{"start.sh"}, nil, dir, nil, nil)
	require.EqualError(t, err, "cannot execute ./start.sh: "+want)

	// Given a script with no #! line, execve's own error is given.
	plain := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(plain, []byte("\x7fELF"), 0o755))
	_, err = testForker.Start(plain, []string{"plain"}, nil, "", nil, nil)
	require.ErrorContains(t, err, "cannot execute "+plain+": exec format error (errno=8 ENOEXEC)")
}
