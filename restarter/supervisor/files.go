package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// This file handles the files the restarter is given paths to but does not
// own outright: the pid file and the base id file. It touches neither unless
// it is sure the file is its own.

// pidFile is a --pid-file taken with an exclusive flock: a second restarter
// given the same path fails at once, without touching the file.
type pidFile struct {
	path    string
	f       *os.File
	created bool // the file did not exist before this restarter took it
}

// takePIDFile opens and locks path. It writes nothing yet: the pid is
// written once set-up succeeded (write).
func takePIDFile(path string) (*pidFile, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("pid file %s: is a directory; give the path of a file", path)
	}
	p := &pidFile{path: path, created: true}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		p.created = false
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("pid file %s: %v", path, unwrapPathError(err))
	}
	if err := lockFile(f); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if holder := strings.TrimSpace(string(b)); holder != "" {
			return nil, fmt.Errorf("pid file %s: held by another running restarter (PID=%s)", path, holder)
		}
		return nil, fmt.Errorf("pid file %s: held by another running restarter: %v", path, err)
	}
	p.f = f
	return p, nil
}

// write replaces the file's content with pid.
func (p *pidFile) write(pid int) error {
	if err := p.f.Truncate(0); err != nil {
		return fmt.Errorf("pid file %s: %w", p.path, err)
	}
	if _, err := p.f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0); err != nil {
		return fmt.Errorf("pid file %s: %w", p.path, err)
	}
	return nil
}

// release removes the file if it still holds pid (or was created by this
// restarter and never written), then drops the lock.
func (p *pidFile) release(pid int) {
	b, err := os.ReadFile(p.path)
	content := strings.TrimSpace(string(b))
	if err == nil && (content == strconv.Itoa(pid) || (p.created && content == "")) {
		os.Remove(p.path)
	}
	p.f.Close()
}

// clearBaseID removes what an earlier run left at --base-id-path, so that
// epoch 0's id is never confused with it: nothing, an empty file or one
// holding a base id. Anything else is not the restarter's to delete, and is
// a usage error. A stale id that cannot be removed (a read-only file system)
// is an error too: later epochs would be given it as ENVOY_BASE_ID.
func clearBaseID(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("base id file %s: %v", path, unwrapPathError(err))
	case fi.IsDir():
		return usageErrorf("flag -base-id-path: %s is a directory; give the path of a file for Envoy's --base-id-path", path)
	case !fi.Mode().IsRegular():
		return usageErrorf("flag -base-id-path: %s is not a regular file; refusing to delete it", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("base id file %s: %v", path, unwrapPathError(err))
	}
	if id := strings.TrimSpace(string(b)); id != "" {
		if _, err := strconv.ParseUint(id, 10, 32); err != nil {
			return usageErrorf("flag -base-id-path: %s holds something other than a base id (%d bytes starting %q); refusing to delete it", path, len(b), firstLine(string(b), 40))
		}
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("base id file %s: cannot remove the stale base id left by an earlier run (%v); later epochs would be given it: remove it or choose another --base-id-path", path, unwrapPathError(err))
	}
	return nil
}

// firstLine returns s's first line, cut to at most n bytes.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n]
	}
	return s
}
