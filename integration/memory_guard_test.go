package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/procfs"
	"github.com/envoy-restarter/restarter/internal/proctest"
	"github.com/envoy-restarter/restarter/restarter/status"
)

// The memory guard (docs/MEMORY-GUARD.md) end to end, against the cgroup
// files the restarter finds through the kernel's own /proc/self/cgroup and
// /proc/self/mountinfo: the test binary re-runs itself in a mount namespace
// of its own (`unshare --mount --propagation private`) and there
// bind-mounts a fixture tree over each cgroup memory hierarchy, with this
// process's cgroup directory at the kernel's path; the restarter it starts
// inherits the namespace. The host's cgroup tree is never written to; the
// mounts die with the namespace.

// memoryGuardChildEnv marks the re-run test binary, and carries the
// parent's mount namespace, which the child must have left before it mounts.
const memoryGuardChildEnv = "INTEGRATION_MEMORY_GUARD_PARENT_MNT_NS"

const (
	mib = 1 << 20

	// fixtureLimit is the fixture's memory limit; inactiveFile its
	// reclaimable page cache, which the guard does not count as used.
	fixtureLimit = 512 * mib
	inactiveFile = 12 * mib
	// tightUsed leaves 2 MiB of room: less than any Envoy's (or fakeenvoy's,
	// about 20 MiB) resident memory. roomyUsed leaves 412 MiB.
	tightUsed = 510 * mib
	roomyUsed = 100 * mib
)

func TestMemoryGuardRefusesHotRestartsTheCgroupHasNoRoomFor(t *testing.T) {
	if parentNS := os.Getenv(memoryGuardChildEnv); parentNS != "" {
		memoryGuardScenario(t, parentNS)
		return
	}
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skipf("bind mounts over the cgroup hierarchies need CAP_SYS_ADMIN; running as uid %d", os.Geteuid())
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("util-linux unshare(1) not in PATH")
	}
	if len(memoryHierarchies(t)) == 0 {
		t.Skip("no cgroup memory hierarchy is mounted where this process can see it: nothing to cover with fixtures")
	}
	ns, err := os.Readlink("/proc/self/ns/mnt")
	require.NoError(t, err)

	// The child gets the binaries built here, and dies with this process.
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	name := "^" + t.Name() + "$"
	cmd := exec.CommandContext(ctx, unshare, "--mount", "--propagation", "private",
		os.Args[0], "-test.run="+name, "-test.v", "-test.count=1", fmt.Sprintf("-test.timeout=%s", 3*wait-5*time.Second))
	cmd.Env = append(os.Environ(), memoryGuardChildEnv+"="+ns,
		"RESTARTER_BIN="+proctest.Binary(t, "restarter"), "FAKEENVOY_BIN="+proctest.Binary(t, "fakeenvoy"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(out), "unshare failed") {
		t.Skipf("the kernel refused a new mount namespace here (unshare(CLONE_NEWNS)): %s", out)
	}
	require.NoError(t, err, "the test in its own mount namespace:\n%s", out)
	require.Contains(t, string(out), "--- PASS: "+t.Name(), "the child ran and passed, not skipped:\n%s", out)
	t.Logf("the test in its own mount namespace:\n%s", out)
}

// memoryGuardScenario runs in the private mount namespace.
func memoryGuardScenario(t *testing.T, parentNS string) {
	ns, err := os.Readlink("/proc/self/ns/mnt")
	require.NoError(t, err)
	require.NotEqual(t, parentNS, ns, "still in the parent's mount namespace: refusing to mount")

	// Given a memory limit with 2 MiB of room left, on every memory
	// hierarchy the restarter will read,
	cgroups := coverMemoryHierarchies(t)
	cgroups.setUsed(tightUsed)
	sb := newSafeSandbox(t, "")
	r := sb.start("--control-socket", sb.sock)
	r.WaitLine(`memory guard: limit 512\.0 MiB \(cgroup v[12] /.*\)$`, 1, wait)
	e0, _ := sb.waitLive(0)
	rss, _, err := procfs.Memory(e0.PID)
	require.NoError(t, err)
	require.Greater(t, uint64(rss)<<10, uint64(fixtureLimit-tightUsed), "epoch 0's resident memory must not fit in the room left")

	// when a SIGHUP and a `restarter reload` ask for a hot restart,
	const reasonRE = `not enough memory for a second Envoy: limit 512\.0 MiB, used 510\.0 MiB, Envoy resident \d+\.\d MiB`
	refusedRE := `\[error\]\[restarter\] memory guard refused hot restart to epoch 1: (` + reasonRE + `)$`
	r.Signal(syscall.SIGHUP)
	bySIGHUP := r.WaitLine(refusedRE, 1, wait)[1]
	code, out := sb.reload()
	byReload := r.WaitLine(refusedRE, 2, wait)[1]
	t.Logf("epoch 0 resident: %d KiB; refused: %s", rss, bySIGHUP)

	// then both are refused with the reason, no epoch is started, epoch 0
	// serves on,
	require.Equal(t, 1, code, out)
	require.Equal(t, "restarter reload: hot restart to epoch 1 failed: "+byReload+"\n", out)
	require.Empty(t, r.Lines(`forking and execing new child process at epoch 1`))
	require.Equal(t, "0", getEpoch(t, sb.addr()))
	s := requireStatusJSON(t, sb)
	want := status.Status{
		Phase:       "running",
		Epochs:      []status.EpochStatus{{Epoch: 0, PID: e0.PID, State: "live"}},
		LastRestart: &status.RestartStatus{Epoch: 1, Result: "failed", Reason: byReload},
		Counters: status.Counters{SIGHUPs: 1, Reloads: 1, Restarts: 2, RestartsFailed: 2, MemoryGuardRefusals: 2,
			Outcomes: map[string]int{"refused": 2}},
		Restarts: []status.Restart{
			{ID: 1, Epoch: 1, Trigger: "SIGHUP", Outcome: "refused", Reason: bySIGHUP},
			{ID: 2, Epoch: 1, Trigger: "reload", Outcome: "refused", Reason: byReload},
		},
	}
	require.Empty(t, cmp.Diff(want, s, ignoreClock))
	// and the metrics count them.
	code, out = runRestarter(t, "metrics", "--control-socket", sb.sock, "--timeout", wait.String())
	require.Equal(t, 0, code, out)
	metrics := metricSamples(t, []byte(out))
	require.Equal(t, 2.0, metrics[`envoy_restarter_memory_guard_refusals_total`])
	require.Equal(t, 2.0, metrics[`envoy_restarter_restarts_total{outcome="refused"}`])

	// Once the cgroup has room, a SIGHUP hot restarts to epoch 1.
	cgroups.setUsed(roomyUsed)
	r.Signal(syscall.SIGHUP)
	sb.waitLive(1)
	require.Equal(t, "exited with code=0", sb.waitReaped(e0))
	s = requireStatusJSON(t, sb)
	require.Equal(t, 2, s.Counters.MemoryGuardRefusals)
	require.Equal(t, map[string]int{"ok": 1, "refused": 2}, s.Counters.Outcomes)
	require.Len(t, s.Restarts, 3)
	require.Equal(t, status.Restart{ID: 3, Epoch: 1, Trigger: "SIGHUP", Outcome: "ok"},
		status.Restart{ID: s.Restarts[2].ID, Epoch: s.Restarts[2].Epoch, Trigger: s.Restarts[2].Trigger, Outcome: s.Restarts[2].Outcome})
	require.Len(t, r.Lines(`memory guard refused`), 2)
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	sb.requireAllGone()
}

// memoryHierarchy is a cgroup hierarchy holding the memory controller as
// this process sees it: where it is mounted, and this process's cgroup
// directory under it.
type memoryHierarchy struct {
	version int    // 2 or 1
	mount   string // e.g. /sys/fs/cgroup, /sys/fs/cgroup/memory
	dir     string // e.g. /sys/fs/cgroup/system.slice/ssh.service
}

// memoryHierarchies finds this process's memory hierarchies from
// /proc/self/cgroup (v2's 0:: line, v1's memory line) and
// /proc/self/mountinfo (the first cgroup2 mount, or cgroup mount with the
// memory option, whose root holds the cgroup), as the restarter does.
func memoryHierarchies(t *testing.T) []memoryHierarchy {
	t.Helper()
	cgroups, err := os.ReadFile("/proc/self/cgroup")
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	var found []memoryHierarchy
	for _, line := range strings.Split(strings.TrimSpace(string(cgroups)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		version := 0
		switch {
		case f[0] == "0" && f[1] == "":
			version = 2
		case slices.Contains(strings.Split(f[1], ","), "memory"):
			version = 1
		default:
			continue
		}
		if h, ok := locateHierarchy(string(mountinfo), version, f[2]); ok {
			found = append(found, h)
		}
	}
	return found
}

// locateHierarchy finds the mount of a hierarchy of version that shows
// cgroup (a path in the hierarchy), and the cgroup's directory under it.
func locateHierarchy(mountinfo string, version int, cgroup string) (memoryHierarchy, bool) {
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep < 6 || sep+3 >= len(f) {
			continue
		}
		root, point, fstype, options := f[3], f[4], f[sep+1], strings.Split(f[sep+3], ",")
		if (version == 2) != (fstype == "cgroup2") || (version == 1 && (fstype != "cgroup" || !slices.Contains(options, "memory"))) {
			continue
		}
		rel, ok := strings.CutPrefix(cgroup, strings.TrimSuffix(root, "/"))
		if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) || strings.HasPrefix(rel, "/..") {
			continue
		}
		return memoryHierarchy{version: version, mount: point, dir: filepath.Join(point, rel)}, true
	}
	return memoryHierarchy{}, false
}

// coveredCgroups is the fixtures bound over the memory hierarchies: this
// process's cgroup directory in each, with the memory files of its version.
type coveredCgroups struct {
	t    *testing.T
	dirs map[string]int // fixture cgroup directory: cgroup version
}

// coverMemoryHierarchies bind-mounts a fixture tree over each memory
// hierarchy's mount point, unmounted when the test ends.
func coverMemoryHierarchies(t *testing.T) *coveredCgroups {
	t.Helper()
	hierarchies := memoryHierarchies(t)
	require.NotEmpty(t, hierarchies)
	c := &coveredCgroups{t: t, dirs: map[string]int{}}
	for _, h := range hierarchies {
		tree := t.TempDir()
		dir := filepath.Join(tree, strings.TrimPrefix(h.dir, h.mount))
		require.NoError(t, os.MkdirAll(dir, 0o755))
		c.dirs[dir] = h.version
		require.NoError(t, syscall.Mount(tree, h.mount, "", syscall.MS_BIND, ""), "bind %s over %s", tree, h.mount)
		t.Cleanup(func() { syscall.Unmount(h.mount, syscall.MNT_DETACH) })
		t.Logf("cgroup v%d: fixture %s bound over %s; this process in %s", h.version, tree, h.mount, h.dir)
	}
	return c
}

// setUsed writes each fixture cgroup's memory files: the limit, a working
// set of used bytes, and inactiveFile of page cache on top.
func (c *coveredCgroups) setUsed(used uint64) {
	c.t.Helper()
	charged := used + inactiveFile
	for dir, version := range c.dirs {
		files := map[string]string{ // cgroup v2
			"memory.max":     fmt.Sprintln(fixtureLimit),
			"memory.current": fmt.Sprintln(charged),
			"memory.stat":    fmt.Sprintf("anon %d\nfile %d\nactive_file 0\ninactive_file %d\n", used, inactiveFile, inactiveFile),
		}
		if version == 1 {
			files = map[string]string{
				"memory.limit_in_bytes": fmt.Sprintln(fixtureLimit),
				"memory.usage_in_bytes": fmt.Sprintln(charged),
				"memory.stat": fmt.Sprintf("cache %d\nrss %d\ninactive_file %d\ntotal_cache %d\ntotal_rss %d\ntotal_inactive_file %d\n",
					inactiveFile, used, inactiveFile, inactiveFile, used, inactiveFile),
			}
		}
		for name, content := range files {
			require.NoError(c.t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
		}
	}
}
