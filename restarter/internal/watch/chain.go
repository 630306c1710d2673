package watch

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A link is one directory entry the kernel looks up on the way to a watched
// file: the directory it lives in and its name. When the entry is written,
// replaced, retargeted or removed, the file's content may change, so the
// watcher watches dir and wakes on events that name it.
type link struct{ dir, name string }

// maxHops is the kernel's limit on symlinks followed in one lookup (ELOOP).
const maxHops = 40

// chain follows the absolute path as open(2) would, one component at a time,
// and returns the links that can change what it opens: every symlink met on
// the way and the final entry. It stops at the first entry it cannot look up
// (missing, not a directory, a symlink loop), which is the last link: the
// one to watch for the path to come back. For a Kubernetes ConfigMap
// `envoy.yaml -> ..data/envoy.yaml`, `..data -> ..2026_12_02_...`, it is
// (dir, envoy.yaml), (dir, ..data), (dir/..2026_12_02_..., envoy.yaml).
func chain(path string) []link {
	var links []link
	dir, rest := "/", components(path)
	for hops := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		if name == ".." {
			dir = filepath.Dir(dir)
			continue
		}
		entry := filepath.Join(dir, name)
		info, err := os.Lstat(entry)
		if err != nil || len(rest) == 0 || info.Mode()&fs.ModeSymlink != 0 {
			links = append(links, link{dir, name})
		}
		if err != nil {
			return links
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			dir = entry
			continue
		}
		target, err := os.Readlink(entry)
		if hops++; err != nil || hops > maxHops {
			return links
		}
		if filepath.IsAbs(target) {
			dir = "/"
		}
		rest = append(components(target), rest...)
	}
	return links
}

// components splits a path into its names, "" and "." left out.
func components(path string) []string {
	var names []string
	for _, name := range strings.Split(path, "/") {
		if name != "" && name != "." {
			names = append(names, name)
		}
	}
	return names
}
