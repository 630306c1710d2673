package memguard

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// Fixture trees: what a kernel shows under / for a process in a cgroup.

const (
	MiB = 1 << 20
	GiB = 1 << 30

	// v1's "no limit": PAGE_COUNTER_MAX pages of 4 KiB.
	v1NoLimit = "9223372036854771712"

	mountRootFS   = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
	mountV2       = "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
	mountTmpfs    = "31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	mountV1CPU    = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:6 - cgroup cgroup rw,cpu,cpuacct\n"
	mountV1Memory = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n"
	mountUnified  = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:5 - cgroup2 cgroup2 rw\n"
)

// fixture maps paths under a root to file contents.
type fixture map[string]string

// root writes f into a fresh directory and returns it.
func (f fixture) root(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	f.writeUnder(t, root)
	return root
}

func (f fixture) writeUnder(t *testing.T, root string) {
	t.Helper()
	for name, content := range f {
		p := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
}

func merge(parts ...fixture) fixture {
	all := fixture{}
	for _, p := range parts {
		maps.Copy(all, p)
	}
	return all
}

// proc is /proc/self: the cgroup lines and the mountinfo lines.
func proc(cgroup, mountinfo string) fixture {
	return fixture{"proc/self/cgroup": cgroup, "proc/self/mountinfo": mountinfo}
}

// v2 is a cgroup v2 directory with memory files; max is "max" or bytes.
func v2(dir, max string, current, inactive uint64) fixture {
	return fixture{
		dir + "/cgroup.procs":   "",
		dir + "/memory.max":     max + "\n",
		dir + "/memory.current": fmt.Sprintln(current),
		dir + "/memory.stat": fmt.Sprintf("anon %d\nfile %d\nactive_file 4096\ninactive_file %d\nslab 8192\n",
			current-inactive, inactive, inactive),
	}
}

// v1 is a cgroup v1 memory directory. Its own inactive_file differs from
// the hierarchical total_inactive_file, which is the one that counts.
func v1(dir, limit string, usage, totalInactive uint64) fixture {
	return fixture{
		dir + "/cgroup.procs":          "",
		dir + "/memory.limit_in_bytes": limit + "\n",
		dir + "/memory.usage_in_bytes": fmt.Sprintln(usage),
		dir + "/memory.use_hierarchy":  "1\n",
		dir + "/memory.stat": fmt.Sprintf("cache %d\nrss 1\ninactive_file 7\nhierarchical_memory_limit %s\ntotal_cache %d\ntotal_inactive_file %d\n",
			totalInactive, limit, totalInactive, totalInactive),
	}
}

func bytes(n uint64) string { return strconv.FormatUint(n, 10) }
