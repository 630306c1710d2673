package memguard

import (
	"io/fs"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRead(t *testing.T) {
	const (
		envoyV2 = "/sys/fs/cgroup/system.slice/envoy.service"
		podV2   = "/sys/fs/cgroup/kubepods/pod1"
		ctrV2   = podV2 + "/ctr1"
		envoyV1 = "/sys/fs/cgroup/memory/envoy"
	)
	procV2 := func(cgroup string) fixture { return proc("0::"+cgroup+"\n", mountRootFS+mountV2) }
	procV1 := proc("12:memory:/envoy\n11:cpu,cpuacct:/envoy\n1:name=systemd:/init.scope\n",
		mountRootFS+mountTmpfs+mountV1CPU+mountV1Memory)
	procHybrid := proc("4:memory:/envoy\n1:cpu:/\n0::/\n",
		mountRootFS+mountTmpfs+mountV1CPU+mountV1Memory+mountUnified)
	rootV1 := v1("/sys/fs/cgroup/memory", v1NoLimit, 8*GiB, 2*GiB)

	for _, tc := range []struct {
		name  string
		given fixture
		want  Reading
	}{{
		name: "v2 limited: memory.max of the unit",
		given: merge(procV2("/system.slice/envoy.service"),
			v2(envoyV2, bytes(512*MiB), 400*MiB, 20*MiB),
			v2("/sys/fs/cgroup/system.slice", "max", 3*GiB, GiB)),
		want: Reading{Limit: 512 * MiB, Usage: 400 * MiB, InactiveFile: 20 * MiB, Path: envoyV2, Version: 2},
	}, {
		name: "v2 max at every level: no limit, own cgroup named",
		given: merge(procV2("/system.slice/envoy.service"),
			v2(envoyV2, "max", 400*MiB, 20*MiB),
			v2("/sys/fs/cgroup/system.slice", "max", 3*GiB, GiB),
			fixture{"/sys/fs/cgroup/cgroup.controllers": "cpu io memory pids\n"}),
		want: Reading{Path: envoyV2, Version: 2},
	}, {
		name: "v2 pod limit tighter than the container's: the pod decides",
		given: merge(procV2("/kubepods/pod1/ctr1"),
			v2(ctrV2, bytes(GiB), 300*MiB, 0),
			v2(podV2, bytes(512*MiB), 450*MiB, 0),
			v2("/sys/fs/cgroup/kubepods", "max", 6*GiB, 0)),
		want: Reading{Limit: 512 * MiB, Usage: 450 * MiB, Path: podV2, Version: 2},
	}, {
		name: "v2 pod limit higher but a sidecar used it up: least room decides",
		given: merge(procV2("/kubepods/pod1/ctr1"),
			v2(ctrV2, bytes(512*MiB), 100*MiB, 0),
			v2(podV2, bytes(GiB), 900*MiB, 0)),
		want: Reading{Limit: GiB, Usage: 900 * MiB, Path: podV2, Version: 2},
	}, {
		name: "v2 memory controller not enabled for the leaf: the ancestor's limit still holds",
		given: merge(procV2("/kubepods/pod1/ctr1"),
			fixture{ctrV2 + "/cgroup.procs": ""},
			v2(podV2, bytes(512*MiB), 200*MiB, 0)),
		want: Reading{Limit: 512 * MiB, Usage: 200 * MiB, Path: podV2, Version: 2},
	}, {
		name: "v2 root cgroup, no memory files anywhere: inert",
		given: merge(procV2("/"),
			fixture{"/sys/fs/cgroup/cgroup.controllers": "cpu io pids\n"}),
		want: Reading{},
	}, {
		name: "v2 in a cgroup namespace: the container's cgroup is the mount's top",
		given: merge(procV2("/"),
			v2("/sys/fs/cgroup", bytes(256*MiB), 100*MiB, MiB)),
		want: Reading{Limit: 256 * MiB, Usage: 100 * MiB, InactiveFile: MiB, Path: "/sys/fs/cgroup", Version: 2},
	}, {
		name: "v1 limited: total_inactive_file, not inactive_file",
		given: merge(procV1, rootV1,
			v1(envoyV1, bytes(512*MiB), 400*MiB, 100*MiB)),
		want: Reading{Limit: 512 * MiB, Usage: 400 * MiB, InactiveFile: 100 * MiB, Path: envoyV1, Version: 1},
	}, {
		name:  "v1 PAGE_COUNTER_MAX everywhere: no limit",
		given: merge(procV1, rootV1, v1(envoyV1, v1NoLimit, 400*MiB, 100*MiB)),
		want:  Reading{Path: envoyV1, Version: 1},
	}, {
		name: "v1 container: the mount's root is the container's cgroup",
		given: merge(
			proc("9:memory:/kubepods/burstable/pod1/ctr1\n",
				mountRootFS+"1207 1206 0:32 /kubepods/burstable/pod1/ctr1 /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n"),
			v1("/sys/fs/cgroup/memory", bytes(GiB), 600*MiB, 50*MiB)),
		want: Reading{Limit: GiB, Usage: 600 * MiB, InactiveFile: 50 * MiB, Path: "/sys/fs/cgroup/memory", Version: 1},
	}, {
		name: "hybrid, memory on v1, nothing on v2's root: v1 decides",
		given: merge(procHybrid, rootV1,
			v1(envoyV1, bytes(512*MiB), 300*MiB, 0),
			fixture{"/sys/fs/cgroup/unified/cgroup.controllers": "hugetlb\n"}),
		want: Reading{Limit: 512 * MiB, Usage: 300 * MiB, Path: envoyV1, Version: 1},
	}, {
		name: "hybrid, both limited: the one with less room decides",
		given: merge(procHybrid, rootV1,
			v1(envoyV1, bytes(512*MiB), 300*MiB, 0),
			v2("/sys/fs/cgroup/unified", bytes(256*MiB), 200*MiB, 0)),
		want: Reading{Limit: 256 * MiB, Usage: 200 * MiB, Path: "/sys/fs/cgroup/unified", Version: 2},
	}, {
		name:  "hybrid, neither limited (this build machine's shape)",
		given: merge(procHybrid, rootV1, v1(envoyV1, v1NoLimit, 3*MiB, 0)),
		want:  Reading{Path: envoyV1, Version: 1},
	}, {
		name:  "no /proc/self/cgroup (a kernel without cgroups): inert",
		given: fixture{"proc/self/mountinfo": mountRootFS},
		want:  Reading{},
	}, {
		name:  "no memory controller in /proc/self/cgroup: inert",
		given: merge(proc("3:cpu:/envoy\n", mountRootFS+mountV1CPU), v1(envoyV1, bytes(MiB), MiB, 0)),
		want:  Reading{},
	}, {
		name:  "memory hierarchy not mounted here: inert",
		given: merge(proc("0::/envoy\n", mountRootFS), v2("/sys/fs/cgroup/envoy", bytes(MiB), MiB, 0)),
		want:  Reading{},
	}, {
		name:  "cgroup outside this cgroup namespace: inert",
		given: merge(procV2("/../../init.scope"), v2("/sys/fs/cgroup", bytes(MiB), MiB, 0)),
		want:  Reading{},
	}, {
		name: "mount point with a space, escaped in mountinfo",
		given: merge(
			proc("0::/envoy\n", mountRootFS+`30 22 0:26 / /run/cgroup\040two rw - cgroup2 cgroup2 rw`+"\n"),
			v2("/run/cgroup two/envoy", bytes(GiB), MiB, 0)),
		want: Reading{Limit: GiB, Usage: MiB, Path: "/run/cgroup two/envoy", Version: 2},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Read(tc.given.root(t))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// A file that is there but cannot be understood is an error naming it; the
// caller cannot judge and says so.
func TestReadErrors(t *testing.T) {
	const leaf = "/sys/fs/cgroup/envoy"
	procV2 := proc("0::/envoy\n", mountRootFS+mountV2)
	withFile := func(name, content string) fixture {
		return merge(procV2, v2(leaf, bytes(512*MiB), 400*MiB, 0), fixture{leaf + "/" + name: content})
	}
	for _, tc := range []struct {
		name    string
		given   fixture
		wantErr string
	}{
		{"limit not a number", withFile("memory.max", "12ab\n"),
			`/sys/fs/cgroup/envoy/memory.max: "12ab" is not a number of bytes`},
		{"limit negative", withFile("memory.max", "-1\n"),
			`/sys/fs/cgroup/envoy/memory.max: "-1" is not a number of bytes`},
		{"usage not a number", withFile("memory.current", "\n"),
			`/sys/fs/cgroup/envoy/memory.current: "" is not a number of bytes`},
		{"inactive_file not a number", withFile("memory.stat", "anon 1\ninactive_file lots\n"),
			`/sys/fs/cgroup/envoy/memory.stat: inactive_file: "lots" is not a number of bytes`},
		{"memory.stat without inactive_file", withFile("memory.stat", "anon 1\nfile 2\n"),
			`/sys/fs/cgroup/envoy/memory.stat: no inactive_file line`},
		{"v1 stat with only the cgroup's own inactive_file",
			merge(proc("4:memory:/\n", mountRootFS+mountV1Memory),
				v1("/sys/fs/cgroup/memory", bytes(GiB), MiB, 0),
				fixture{"/sys/fs/cgroup/memory/memory.stat": "inactive_file 7\n"}),
			`/sys/fs/cgroup/memory/memory.stat: no total_inactive_file line`},
		{"malformed /proc/self/cgroup", merge(procV2, fixture{"proc/self/cgroup": "garbage\n"}),
			`proc/self/cgroup: malformed line "garbage"`},
		{"malformed /proc/self/mountinfo", merge(procV2, fixture{"proc/self/mountinfo": "30 22 0:26 /\n"}),
			`proc/self/mountinfo: malformed line "30 22 0:26 /"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tc.given.root(t)
			_, err := Read(root)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}

	t.Run("a limit without its usage file", func(t *testing.T) {
		given := merge(procV2, fixture{leaf + "/memory.max": "536870912\n", leaf + "/memory.stat": "inactive_file 0\n"})
		_, err := Read(given.root(t))
		require.ErrorIs(t, err, fs.ErrNotExist)
		require.ErrorContains(t, err, "/sys/fs/cgroup/envoy/memory.current")
	})
	t.Run("mountinfo missing while cgroup is there", func(t *testing.T) {
		given := fixture{"proc/self/cgroup": "0::/envoy\n"}
		_, err := Read(given.root(t))
		require.ErrorIs(t, err, fs.ErrNotExist)
		require.ErrorContains(t, err, "proc/self/mountinfo")
	})
}

func TestLevelsStopAtTheMount(t *testing.T) {
	h := hierarchy{version: 1, mount: "/sys/fs/cgroup/memory", dir: "/sys/fs/cgroup/memory/a/b"}
	require.Equal(t, []string{"/sys/fs/cgroup/memory/a/b", "/sys/fs/cgroup/memory/a", "/sys/fs/cgroup/memory"}, h.levels())
	h = hierarchy{version: 2, mount: "/sys/fs/cgroup", dir: "/sys/fs/cgroup"}
	require.Equal(t, []string{"/sys/fs/cgroup"}, h.levels())
}

func TestUnescapeMountinfoPaths(t *testing.T) {
	require.Equal(t, "/a b\tc\nd\\e", unescape(`/a\040b\011c\012d\134e`))
	require.Equal(t, `/plain`, unescape(`/plain`))
	require.Equal(t, `/odd\9x\04`, unescape(`/odd\9x\04`))
}
