//go:build managers

package managers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStartFakeenvoyBuilds: with no HOME and go on PATH, the script builds
// fakeenvoy under $TMPDIR/envoy-restarter-$UID and runs it. It needs go and
// go's caches (building would otherwise download fakeenvoy's modules), so
// it runs with the managers tag, as CI does, where they are a requirement.
func TestStartFakeenvoyBuilds(t *testing.T) {
	t.Parallel()
	in := newInstall(t)
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "go on PATH")
	caches, err := exec.Command(goBin, "env", "GOCACHE", "GOMODCACHE").Output()
	require.NoError(t, err)
	dirs := strings.Fields(string(caches))
	require.Len(t, dirs, 2, "go env GOCACHE GOMODCACHE: %q", caches)
	require.NotEqual(t, "off", dirs[0], "go's build cache")
	stdout, stderr, err := runStartFakeenvoy(in, "PATH="+filepath.Dir(goBin)+":/usr/bin:/bin", "GOCACHE="+dirs[0], "GOMODCACHE="+dirs[1])
	require.NoError(t, err, "stderr: %s", stderr)
	require.Contains(t, stdout+stderr, "configuration '"+in.path("etc/envoy.yaml")+"' OK")
	_, err = os.Stat(filepath.Join(in.dir, "envoy-restarter-0", "fakeenvoy"))
	require.NoError(t, err, "the built fakeenvoy under $TMPDIR/envoy-restarter-$UID")
}
