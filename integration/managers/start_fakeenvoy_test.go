package managers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// TestStartFakeenvoyCleanEnvironment runs examples/start_fakeenvoy.sh as a
// process manager runs it (env -i: no HOME, a PATH without go), in
// --mode validate so that it binds nothing.
func TestStartFakeenvoyCleanEnvironment(t *testing.T) {
	t.Parallel()
	in := newInstall(t)
	script := filepath.Join(in.examples, "start_fakeenvoy.sh")
	clean := []string{"PATH=/usr/bin:/bin", "TMPDIR=" + in.dir, "RESTART_EPOCH=0", "FAKEENVOY_CONFIG=" + in.path("etc/envoy.yaml")}
	runScript := func(env ...string) (stdout, stderr string, err error) {
		cmd := exec.Command("/bin/sh", script, "--mode", "validate")
		cmd.Env = append(append([]string{}, clean...), env...)
		cmd.Dir = in.dir
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err = cmd.Run()
		return out.String(), errOut.String(), err
	}

	t.Run("no HOME, no go, FAKEENVOY given", func(t *testing.T) {
		stdout, stderr, err := runScript("FAKEENVOY=" + proctest.Binary(t, "fakeenvoy"))
		require.NoError(t, err, "stderr: %s", stderr)
		require.Contains(t, stdout+stderr, "configuration '"+in.path("etc/envoy.yaml")+"' OK")
	})

	t.Run("no go and no FAKEENVOY: one line", func(t *testing.T) {
		_, stderr, err := runScript()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit)
		require.Equal(t, 1, exit.ExitCode())
		require.Equal(t, "start_fakeenvoy.sh: go not found on PATH: set FAKEENVOY to a built fakeenvoy (go build -o fakeenvoy ./fakeenvoy)\n", stderr)
	})

	t.Run("no HOME, go on PATH: builds fakeenvoy", func(t *testing.T) {
		goBin, err := exec.LookPath("go")
		if err != nil {
			t.Skip("no go on PATH (as under Bazel's sandbox): the build path needs it")
		}
		// go's caches are given, so the build is the usual cached one; the
		// script's own defaults (under TMPDIR) are what it uses for the rest.
		caches, err := exec.Command(goBin, "env", "GOCACHE", "GOMODCACHE").Output()
		require.NoError(t, err)
		dirs := strings.Fields(string(caches))
		if len(dirs) != 2 || dirs[0] == "off" {
			t.Skipf("go has no build and module caches here (%q; as under Bazel's test sandbox): building fakeenvoy would download its modules", caches)
		}
		stdout, stderr, err := runScript("PATH="+filepath.Dir(goBin)+":/usr/bin:/bin", "GOCACHE="+dirs[0], "GOMODCACHE="+dirs[1])
		require.NoError(t, err, "stderr: %s", stderr)
		require.Contains(t, stdout+stderr, "configuration '"+in.path("etc/envoy.yaml")+"' OK")
		_, err = os.Stat(filepath.Join(in.dir, "envoy-restarter-0", "fakeenvoy"))
		require.NoError(t, err, "the built fakeenvoy under $TMPDIR/envoy-restarter-$UID")
	})
}
