package memguard

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// nsChildEnv marks the re-executed test binary and carries the parent's
// mount namespace, which the child must not be in before it mounts.
const nsChildEnv = "MEMGUARD_TEST_PARENT_MNT_NS"

// The production path, Read("/"), against the real kernel's
// /proc/self/cgroup and /proc/self/mountinfo: the test binary re-runs itself
// under `unshare --mount --propagation private`, bind-mounts a fixture tree
// over each memory hierarchy's mount point (leaving the kernel's mountinfo
// line for it in place), and reads. The mounts die with the child's mount
// namespace; the host's cgroup tree is never written to.
//
// /proc/self/cgroup and /proc/self/mountinfo stay as the kernel writes
// them: that is the point. (They could be covered too: a process may
// bind-mount over its own /proc/PID files, though `mount --bind X
// /proc/self/cgroup` from a shell covers mount(8)'s, gone when it exits.)
func TestReadInPrivateMountNamespace(t *testing.T) {
	if parentNS := os.Getenv(nsChildEnv); parentNS != "" {
		readUnderFixtureMounts(t, parentNS)
		return
	}
	if os.Geteuid() != 0 {
		t.Skipf("bind mounts need CAP_SYS_ADMIN; running as uid %d", os.Geteuid())
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("util-linux unshare(1) not in PATH")
	}
	hierarchies, err := findHierarchies("/")
	require.NoError(t, err)
	if len(hierarchies) == 0 {
		t.Skip("no cgroup memory hierarchy is mounted where this process can see it: nothing to cover with fixtures")
	}
	ns, err := os.Readlink("/proc/self/ns/mnt")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--mount", "--propagation", "private",
		os.Args[0], "-test.run=^TestReadInPrivateMountNamespace$", "-test.v", "-test.count=1", "-test.timeout=50s")
	cmd.Env = append(os.Environ(), nsChildEnv+"="+ns)
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(out), "unshare failed") {
		t.Skipf("the kernel refused a new mount namespace here (unshare(CLONE_NEWNS)): %s", out)
	}
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "--- PASS: TestReadInPrivateMountNamespace", "the child ran and passed, not skipped:\n%s", out)
	t.Logf("child:\n%s", out)
}

// readUnderFixtureMounts runs in the private mount namespace. Each memory
// hierarchy gets a fixture with this process's cgroup directory at the
// kernel's relative path: v1 leaves less room than v2, so on a hybrid host
// v1 must decide.
func readUnderFixtureMounts(t *testing.T, parentNS string) {
	ns, err := os.Readlink("/proc/self/ns/mnt")
	require.NoError(t, err)
	require.NotEqual(t, parentNS, ns, "still in the parent's mount namespace: refusing to mount")

	hierarchies, err := findHierarchies("/")
	require.NoError(t, err)
	require.NotEmpty(t, hierarchies)
	var want Reading
	for _, h := range hierarchies {
		rel := strings.TrimPrefix(h.dir, h.mount)
		var files fixture
		var r Reading
		if h.version == 1 {
			files = v1(rel, bytes(512*MiB), 400*MiB, 100*MiB) // room 212 MiB
			r = Reading{Limit: 512 * MiB, Usage: 400 * MiB, InactiveFile: 100 * MiB, Path: h.dir, Version: 1}
		} else {
			files = v2(rel, bytes(GiB), 300*MiB, 50*MiB) // room 774 MiB
			r = Reading{Limit: GiB, Usage: 300 * MiB, InactiveFile: 50 * MiB, Path: h.dir, Version: 2}
		}
		if want.Version != 1 {
			want = r
		}
		tree := t.TempDir()
		files.writeUnder(t, tree)
		require.NoError(t, syscall.Mount(tree, h.mount, "", syscall.MS_BIND, ""), "bind %s over %s", tree, h.mount)
		t.Cleanup(func() { syscall.Unmount(h.mount, syscall.MNT_DETACH) })
		t.Logf("cgroup v%d: fixture %s bound over %s; this process in %s", h.version, tree, h.mount, h.dir)
	}

	got, err := Read("/")
	require.NoError(t, err)
	require.Equal(t, want, got)
	ok, reason := Check(got, 256*MiB) // fits v2's room, not v1's
	require.Equal(t, want.Version == 2, ok, reason)
}
