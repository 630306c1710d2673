package control

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// askEnv, set to the name of a socket, makes the test binary a client
// instead: in the directory open on its descriptor 3, it asks that
// control socket for the status, prints the reply as JSON on stdout and
// exits. A test runs it as another user: reaching the socket through a
// descriptor, and the binary through /proc/self/exe, that user needs
// search permission on no directory but the socket's own.
const askEnv = "CONTROL_TEST_ASK"

// nobody is the uid (and gid) the other user's client runs as.
const nobody = 65534

func TestMain(m *testing.M) {
	if name := os.Getenv(askEnv); name != "" {
		os.Exit(askAndPrint(name))
	}
	os.Exit(m.Run())
}

func askAndPrint(name string) int {
	if err := unix.Fchdir(3); err != nil {
		fmt.Fprintln(os.Stderr, "fchdir to the socket's directory:", err)
		return 1
	}
	reply, err := Ask(name, "status", 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(reply)
	return 0
}

// requireMappedUID skips the test unless this process may run another as
// uid: it must be root, in a user namespace (if any) that maps uid.
func requireMappedUID(t *testing.T, uid uint32) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("only root can run a client as another user")
	}
	b, err := os.ReadFile("/proc/self/uid_map")
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var inside, outside, count uint64
		if _, err := fmt.Sscan(line, &inside, &outside, &count); err == nil && uint64(uid) >= inside && uint64(uid) < inside+count {
			return
		}
	}
	t.Skipf("uid %d is not mapped in this user namespace", uid)
}

// askAs runs the test binary as uid and gid id to ask the control socket
// at path for the status, and returns the reply.
func askAs(t *testing.T, id uint32, path string) Reply {
	t.Helper()
	dir, err := os.Open(filepath.Dir(path))
	require.NoError(t, err)
	defer dir.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), askEnv+"="+filepath.Base(path))
	cmd.ExtraFiles = []*os.File{dir} // descriptor 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: id, Gid: id}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "client as uid %d: %s", id, stderr.String())
	var reply Reply
	require.NoError(t, json.Unmarshal(out, &reply), "%s", out)
	return reply
}

func TestControlRefusesAnotherUser(t *testing.T) {
	requireMappedUID(t, nobody)
	// Given a control server whose socket anyone may open (a mode made too
	// wide by hand: the server must not rely on the mode alone),
	s, path, log := listen(t)
	require.NoError(t, os.Chmod(filepath.Dir(path), 0o711))
	require.NoError(t, os.Chmod(path, 0o666))
	serveStatus(s)

	// when a process of another user asks for the status,
	reply := askAs(t, nobody, path)

	// then it is refused, and the refusal is logged with its uid,
	require.False(t, reply.OK)
	require.Nil(t, reply.Status)
	require.Contains(t, reply.Error, "permission denied")
	require.Equal(t, 1, log.count(fmt.Sprintf("uid %d", nobody)), "%q", log.all())

	// while root is still answered.
	reply = askAs(t, 0, path)
	require.Equal(t, "running", reply.Status.Phase)
}
