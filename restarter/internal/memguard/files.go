package memguard

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// layout names a cgroup version's memory files.
type layout struct {
	limit, usage string // files holding one number of bytes
	inactiveKey  string // memory.stat's key for the reclaimable page cache
}

var layouts = map[int]layout{
	// v2's memory.stat counts the whole subtree already.
	2: {limit: "memory.max", usage: "memory.current", inactiveKey: "inactive_file"},
	// v1's inactive_file is the cgroup's own; total_ counts its subtree as
	// usage_in_bytes does.
	1: {limit: "memory.limit_in_bytes", usage: "memory.usage_in_bytes", inactiveKey: "total_inactive_file"},
}

// noLimitFloor: a limit this high is "no limit". v2 writes "max"; v1 writes
// PAGE_COUNTER_MAX pages in bytes, 9223372036854771712 with 4 KiB pages and
// a little less with larger ones. No machine has 4 EiB of memory.
const noLimitFloor = 1 << 62

// readLevel reads one cgroup directory: its limit and, when it has one, its
// usage and inactive page cache. A directory without the limit file (v2's
// root cgroup, or a cgroup the memory controller is not enabled for) yields
// the zero Reading: it limits nothing.
func readLevel(root, dir string, version int) (Reading, error) {
	l := layouts[version]
	at := func(name string) string { return filepath.Join(root, dir, name) }
	limit, err := readBytes(at(l.limit))
	if errors.Is(err, fs.ErrNotExist) {
		return Reading{}, nil
	}
	if err != nil {
		return Reading{}, err
	}
	r := Reading{Path: dir, Version: version}
	if limit >= noLimitFloor {
		return r, nil
	}
	r.Limit = limit
	if r.Usage, err = readBytes(at(l.usage)); err != nil {
		return Reading{}, err
	}
	if r.InactiveFile, err = readStat(at("memory.stat"), l.inactiveKey); err != nil {
		return Reading{}, err
	}
	return r, nil
}

// readBytes reads a file holding a number of bytes, or v2's "max".
func readBytes(file string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return noLimitFloor, nil
	}
	return parseBytes(file, s)
}

// readStat reads key's value from a memory.stat file ("key value" lines).
func readStat(file, key string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		if k == key {
			return parseBytes(file+": "+key, strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("%s: no %s line", file, key)
}

func parseBytes(what, s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number of bytes", what, s)
	}
	return n, nil
}
