package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// askEnv, set to a socket path, makes the test binary a client instead: it
// asks that control socket for the status, prints the reply as JSON on
// stdout and exits. A test runs it as another user.
const askEnv = "CONTROL_TEST_ASK"

// nobody is the uid (and gid) the other user's client runs as.
const nobody = 65534

func TestMain(m *testing.M) {
	if path := os.Getenv(askEnv); path != "" {
		os.Exit(askAndPrint(path))
	}
	os.Exit(m.Run())
}

func askAndPrint(path string) int {
	reply, err := Ask(path, "status", 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(reply)
	return 0
}

// copyTestBinary copies the running test binary into dir, where another
// user may execute it (the build directory is the builder's only).
func copyTestBinary(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	src, err := os.Open(self)
	require.NoError(t, err)
	defer src.Close()
	path := filepath.Join(dir, "control.test")
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
	return path
}

// askAs runs the test binary as uid and gid id to ask the control socket
// at path for the status, and returns the reply.
func askAs(t *testing.T, id uint32, binary, path string) Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "-test.run=^$")
	cmd.Env = append(os.Environ(), askEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: id, Gid: id}}
	var stderr []byte
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	require.NoError(t, err, "client as uid %d: %s", id, stderr)
	var reply Reply
	require.NoError(t, json.Unmarshal(out, &reply), "%s", out)
	return reply
}

func TestControlRefusesAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("only root can run a client as another user")
	}
	// Given a control server whose socket anyone may open (a mode made too
	// wide by hand: the server must not rely on the mode alone),
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		require.NoError(t, os.Chmod(d, 0o755))
	}
	path := filepath.Join(dir, "control.sock")
	log := newServerLog()
	s, err := Listen(path, log.add)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	require.NoError(t, os.Chmod(path, 0o666))
	serveStatus(s)
	binary := copyTestBinary(t, dir)

	// when a process of another user asks for the status,
	reply := askAs(t, nobody, binary, path)

	// then it is refused, and the refusal is logged with its uid,
	require.False(t, reply.OK)
	require.Nil(t, reply.Status)
	require.Contains(t, reply.Error, "permission denied")
	require.Equal(t, 1, log.count(fmt.Sprintf("uid %d", nobody)), "%q", log.all())

	// while root is still answered.
	reply = askAs(t, 0, binary, path)
	require.Equal(t, "running", reply.Status.Phase)
}
