package integration

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// TestShellScenarios runs each operator-style *_test.sh script with bash, so
// `go test ./integration/...` covers them too; under Bazel they are also
// sh_test targets of their own. The scripts get the binaries this test
// binary uses.
func TestShellScenarios(t *testing.T) {
	t.Parallel()
	scripts, err := filepath.Glob("*_test.sh")
	require.NoError(t, err)
	require.NotEmpty(t, scripts, "no *_test.sh next to the test")
	env := []string{
		"RESTARTER_BIN=" + proctest.Binary(t, "restarter"),
		"FAKEENVOY_BIN=" + proctest.Binary(t, "fakeenvoy"),
	}
	for _, script := range scripts {
		t.Run(script, func(t *testing.T) {
			t.Parallel()
			path, err := filepath.Abs(script)
			require.NoError(t, err)
			// The scripts' own temp dirs go under the test's.
			dir := t.TempDir()
			sh := proctest.Start(t, proctest.Options{Dir: dir, Env: append(env, "TMPDIR="+dir)}, "/bin/bash", path)
			require.Equal(t, proctest.Exit{Code: 0}, sh.Wait(time.Minute), "bash %s", script)
			sh.WaitLine(`^PASS$`, 1, wait)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "the script left files behind")
		})
	}
}
