package memguard

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Where the restarter's memory cgroups are: /proc/self/cgroup names each
// cgroup by its path in its hierarchy, /proc/self/mountinfo says where each
// hierarchy is mounted and from which of its cgroups (a container usually
// sees its own cgroup as the mount's root).

// hierarchy is one cgroup hierarchy holding the memory controller, as this
// process sees it.
type hierarchy struct {
	version int    // 2 or 1
	mount   string // the mount point, e.g. /sys/fs/cgroup or /sys/fs/cgroup/memory
	dir     string // the restarter's cgroup under mount, e.g. /sys/fs/cgroup/memory/kubepods/pod1
}

// levels lists the cgroup directories from the restarter's own up to the
// mount point, which is as high as this process can see.
func (h hierarchy) levels() []string {
	dirs := []string{h.dir}
	for dir := h.dir; dir != h.mount && dir != "/"; {
		dir = path.Dir(dir)
		dirs = append(dirs, dir)
	}
	return dirs
}

// membership is a line of /proc/self/cgroup that holds memory: the v2 line
// ("0::/path") or v1's memory controller ("4:memory:/path").
type membership struct {
	version int
	cgroup  string // path in the hierarchy, e.g. /kubepods/pod1
}

// mount is the part of a /proc/self/mountinfo line that locates a cgroup
// hierarchy.
type mount struct {
	root    string // the cgroup the mount shows as its top, e.g. /
	point   string // where, e.g. /sys/fs/cgroup/memory
	fstype  string // cgroup2 or cgroup (others are not kept)
	options []string
}

// findHierarchies lists the memory hierarchies the restarter belongs to and
// can see, in /proc/self/cgroup's order. None is not an error.
func findHierarchies(root string) ([]hierarchy, error) {
	cgroupFile := filepath.Join(root, "proc/self/cgroup")
	b, err := os.ReadFile(cgroupFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // a kernel without cgroups
	}
	if err != nil {
		return nil, err
	}
	members, err := parseCgroupFile(cgroupFile, string(b))
	if err != nil || len(members) == 0 {
		return nil, err
	}
	mountinfoFile := filepath.Join(root, "proc/self/mountinfo")
	b, err = os.ReadFile(mountinfoFile)
	if err != nil {
		return nil, err
	}
	mounts, err := parseMountinfo(mountinfoFile, string(b))
	if err != nil {
		return nil, err
	}
	var found []hierarchy
	for _, m := range members {
		if h, ok := locate(m, mounts); ok {
			found = append(found, h)
		}
	}
	return found, nil
}

// parseCgroupFile keeps the lines of /proc/self/cgroup that hold memory.
func parseCgroupFile(file, text string) ([]membership, error) {
	var members []membership
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		controllers, cgroup, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(cgroup, "/") {
			return nil, fmt.Errorf("%s: malformed line %q", file, line)
		}
		switch {
		case id == "0" && controllers == "":
			members = append(members, membership{version: 2, cgroup: cgroup})
		case slices.Contains(strings.Split(controllers, ","), "memory"):
			members = append(members, membership{version: 1, cgroup: cgroup})
		}
	}
	return members, nil
}

// parseMountinfo keeps the cgroup and cgroup2 mounts of
// /proc/self/mountinfo. A line is "ID PARENT MAJ:MIN ROOT POINT OPTIONS
// [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS" (proc_pid_mountinfo(5)).
func parseMountinfo(file, text string) ([]mount, error) {
	var mounts []mount
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		sep := slices.Index(f, "-")
		if sep < 6 || sep+1 >= len(f) {
			return nil, fmt.Errorf("%s: malformed line %q", file, strings.TrimSpace(line))
		}
		m := mount{root: unescape(f[3]), point: unescape(f[4]), fstype: f[sep+1]}
		if m.fstype != "cgroup" && m.fstype != "cgroup2" {
			continue
		}
		if sep+3 < len(f) {
			m.options = strings.Split(f[sep+3], ",")
		}
		mounts = append(mounts, m)
	}
	return mounts, nil
}

// locate finds the mount of m's hierarchy that shows m's cgroup and
// composes the cgroup's directory: the mount point plus the cgroup's path
// below the mount's root. The first such mount wins.
func locate(m membership, mounts []mount) (hierarchy, bool) {
	for _, mnt := range mounts {
		if !carries(mnt, m.version) || !underPath(m.cgroup, mnt.root) {
			continue
		}
		rel := strings.TrimPrefix(m.cgroup, mnt.root)
		if mnt.root == "/" {
			rel = m.cgroup
		}
		// In a cgroup namespace, a cgroup outside it reads /../..; no mount
		// whose root we can match reaches it.
		if underPath(rel, "/..") {
			continue
		}
		dir := path.Join(mnt.point, rel)
		if !underPath(dir, mnt.point) {
			continue
		}
		return hierarchy{version: m.version, mount: path.Clean(mnt.point), dir: dir}, true
	}
	return hierarchy{}, false
}

// carries says whether mnt is a mount of a hierarchy of that version with
// the memory controller (v2 has all its controllers in one hierarchy).
func carries(mnt mount, version int) bool {
	if version == 2 {
		return mnt.fstype == "cgroup2"
	}
	return mnt.fstype == "cgroup" && slices.Contains(mnt.options, "memory")
}

// underPath says whether p is prefix or below it, component-wise.
func underPath(p, prefix string) bool {
	if prefix == "/" {
		return strings.HasPrefix(p, "/")
	}
	rest, ok := strings.CutPrefix(p, prefix)
	return ok && (rest == "" || rest[0] == '/')
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and
// backslash (\040, \011, \012, \134); anything else stays as it is.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
