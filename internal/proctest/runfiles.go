package proctest

import (
	"os"
	"path/filepath"
	"testing"
)

// Runfile returns the path of a data file a test needs: under Bazel, the
// runfiles path in the environment variable env (as $(rlocationpath ...)
// gives); otherwise fallback, relative to the test's package directory.
func Runfile(t testing.TB, env, fallback string) string {
	t.Helper()
	if path, ok := fromEnv(t, env); ok {
		return path
	}
	path, err := filepath.Abs(fallback)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s: not found (set %s to its runfiles path)", path, env)
	}
	return path
}
