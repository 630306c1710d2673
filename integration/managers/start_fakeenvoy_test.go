package managers

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// runStartFakeenvoy runs examples/start_fakeenvoy.sh of in as a process
// manager runs it (env -i: no HOME, a PATH without go) plus env, in --mode
// validate so that it binds nothing.
func runStartFakeenvoy(in *install, env ...string) (stdout, stderr string, err error) {
	cmd := exec.Command("/bin/sh", filepath.Join(in.examples, "start_fakeenvoy.sh"), "--mode", "validate")
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "TMPDIR=" + in.dir, "RESTART_EPOCH=0", "FAKEENVOY_CONFIG=" + in.path("etc/envoy.yaml")}, env...)
	cmd.Dir = in.dir
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestStartFakeenvoyCleanEnvironment: in a clean environment the script
// runs a given fakeenvoy, or says in one line what it needs. (Building
// fakeenvoy itself needs go and its caches: TestStartFakeenvoyBuilds, tag
// managers.)
func TestStartFakeenvoyCleanEnvironment(t *testing.T) {
	t.Parallel()
	in := newInstall(t)

	t.Run("no HOME, no go, FAKEENVOY given", func(t *testing.T) {
		stdout, stderr, err := runStartFakeenvoy(in, "FAKEENVOY="+proctest.Binary(t, "fakeenvoy"))
		require.NoError(t, err, "stderr: %s", stderr)
		require.Contains(t, stdout+stderr, "configuration '"+in.path("etc/envoy.yaml")+"' OK")
	})

	t.Run("no go and no FAKEENVOY: one line", func(t *testing.T) {
		_, stderr, err := runStartFakeenvoy(in)
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit)
		require.Equal(t, 1, exit.ExitCode())
		require.Equal(t, "start_fakeenvoy.sh: go not found on PATH: set FAKEENVOY to a built fakeenvoy (go build -o fakeenvoy ./fakeenvoy)\n", stderr)
	})
}
