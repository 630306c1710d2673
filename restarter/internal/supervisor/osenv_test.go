package supervisor

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The real OS layer, where it can be exercised hermetically: files in the
// test's temp dir, and this test process's own /proc entries.

func TestNewOSEnvFiles(t *testing.T) {
	env := newOSEnv()
	dir := t.TempDir()

	// A pid file taken is written, and released at exit.
	path := filepath.Join(dir, "restarter.pid")
	p, err := env.takePIDFile(path)
	require.NoError(t, err)
	require.NoError(t, p.Write(env.getpid()))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(os.Getpid())+"\n", string(b))
	p.Release(env.getpid())
	require.NoFileExists(t, path)
	// One that cannot be taken is an error, and no pid file at all.
	p, err = env.takePIDFile(filepath.Join(dir, "missing", "restarter.pid"))
	require.Error(t, err)
	require.Nil(t, p)

	// The metrics file is replaced whole; a failure names the file.
	metrics := filepath.Join(dir, "restarter.prom")
	require.NoError(t, env.writeFile(metrics, []byte("a 1\n")))
	b, err = os.ReadFile(metrics)
	require.NoError(t, err)
	require.Equal(t, "a 1\n", string(b))
	bad := filepath.Join(dir, "missing", "restarter.prom")
	require.ErrorContains(t, env.writeFile(bad, nil), "write "+bad+": ")

	// A watch of a file that exists starts, and stops; one of no file fails.
	w, err := env.newWatcher([]string{metrics}, time.Millisecond)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = env.newWatcher(nil, time.Millisecond)
	require.Error(t, err)
}

func TestNewOSEnvProcesses(t *testing.T) {
	env := newOSEnv()
	// An instance no process carries has no leftovers, and no group members.
	id := "test-" + strconv.FormatInt(time.Now().UnixNano(), 16)
	var warned []string
	require.NoError(t, env.checkLeftovers(id, func(msg string) { warned = append(warned, msg) }))
	require.Empty(t, warned)
	require.Empty(t, env.groupMembers(id))
	// This process's resident memory is in bytes: more than a page.
	rss, err := env.resident(os.Getpid())
	require.NoError(t, err)
	require.Greater(t, rss, uint64(os.Getpagesize()))
	// The init gate knows no Envoy before it watched one.
	require.False(t, env.newInitGate(time.Second).Known())
	// A signal asked for has a channel, with room for one.
	require.Equal(t, 1, cap(env.notifySignal(syscall.SIGWINCH)))
	require.Positive(t, env.monotonicUsec())
}
