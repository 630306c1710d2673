package memguard

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The real kernel's /proc/self/cgroup and mountinfo, whatever this machine
// is: they parse, and every memory hierarchy found names a directory that
// exists.
func TestReadThisMachine(t *testing.T) {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	if !strings.Contains(string(mountinfo), " - cgroup") {
		t.Skip("no cgroup or cgroup2 mount in /proc/self/mountinfo: nothing of this machine's to read")
	}
	hierarchies, err := findHierarchies("/")
	require.NoError(t, err)
	for _, h := range hierarchies {
		t.Logf("cgroup v%d hierarchy mounted at %s, this process in %s", h.version, h.mount, h.dir)
		require.DirExists(t, h.dir)
	}

	r, err := Read("/")
	require.NoError(t, err)
	t.Logf("%+v (working set %d)", r, r.WorkingSet())
	if r.Limit > 0 {
		require.Positive(t, r.Usage, "a limited cgroup holding this process uses memory")
		require.DirExists(t, r.Path)
	}
	if r.Version != 0 {
		require.NotEmpty(t, hierarchies)
	}
}
