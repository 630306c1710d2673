package osproc

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
)

// This file is the pid file, which the restarter is given a path to but
// does not own outright: it touches it only once it is sure the file is its
// own.

// PIDFile is a --pid-file taken with an exclusive flock: a second restarter
// given the same path fails at once, without touching the file.
//
// The path may lie in a directory others can write to (/tmp, /run as root),
// so the file is never reached through a symlink, and a file that is not a
// regular one holding nothing or a pid is refused (a usage error) and left
// as it was: otherwise --pid-file /etc/envoy/envoy.yaml, or a planted
// pid.lnk -> victim, would have it overwritten and then deleted.
type PIDFile struct {
	path    string
	f       *os.File
	created bool // the file did not exist before this restarter took it
}

// maxPIDFileSize is more than any pid file holds (a pid and a newline).
const maxPIDFileSize = 32

// TakePIDFile opens and locks path. It writes nothing yet: the pid is
// written once set-up succeeded (write).
func TakePIDFile(path string) (*PIDFile, error) {
	if err := checkPIDFilePath(path); err != nil {
		return nil, err
	}
	p := &PIDFile{path: path, created: true}
	// O_NOFOLLOW: a symlink put there since the check is refused too (O_EXCL
	// never follows one).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if errors.Is(err, fs.ErrExist) {
		p.created = false
		f, err = os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, config.Usagef("flag -pid-file: %s is a symbolic link; refusing to follow it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("pid file %s: %v", path, config.UnwrapPathError(err))
	}
	if !p.created {
		if err := checkPIDFileContent(path, f); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := lockFile(f); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if holder := strings.TrimSpace(string(b)); isPID(holder) {
			return nil, fmt.Errorf("pid file %s: held by another running restarter (PID=%s)", path, holder)
		}
		return nil, fmt.Errorf("pid file %s: held by another running restarter: %v", path, err)
	}
	p.f = f
	return p, nil
}

// checkPIDFilePath refuses what is at path, if anything, unless it is a
// regular file.
func checkPIDFilePath(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case err != nil:
		return nil // nothing there, or the open says why
	case fi.Mode()&fs.ModeSymlink != 0:
		return config.Usagef("flag -pid-file: %s is a symbolic link; refusing to follow it", path)
	case fi.IsDir():
		return config.Usagef("flag -pid-file: %s is a directory; give the path of a file", path)
	case !fi.Mode().IsRegular():
		return config.Usagef("flag -pid-file: %s is not a regular file; refusing to write to it", path)
	}
	return nil
}

// checkPIDFileContent refuses the open file f unless it is a regular file
// that is empty or holds a pid (what a run that died left behind).
func checkPIDFileContent(path string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("pid file %s: %v", path, config.UnwrapPathError(err))
	}
	if !fi.Mode().IsRegular() { // swapped in since checkPIDFilePath
		return config.Usagef("flag -pid-file: %s is not a regular file; refusing to write to it", path)
	}
	b := make([]byte, maxPIDFileSize+1)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("pid file %s: %v", path, config.UnwrapPathError(err))
	}
	if content := string(b[:n]); content != "" && (fi.Size() > maxPIDFileSize || !isPID(strings.TrimSuffix(content, "\n"))) {
		return config.Usagef("flag -pid-file: %s holds something other than a pid (%d bytes starting %q); refusing to overwrite it", path, fi.Size(), firstLine(content, 40))
	}
	return nil
}

// isPID reports whether s is a pid: decimal digits only.
func isPID(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// write replaces the file's content with pid.
func (p *PIDFile) Write(pid int) error {
	if err := p.f.Truncate(0); err != nil {
		return fmt.Errorf("pid file %s: %w", p.path, err)
	}
	if _, err := p.f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0); err != nil {
		return fmt.Errorf("pid file %s: %w", p.path, err)
	}
	return nil
}

// release removes the file if path still names the file this restarter
// took (the same inode, not a symlink) and it holds pid, or it was created
// by this restarter and never written; then it drops the lock. A file put
// in its place is someone else's.
func (p *PIDFile) Release(pid int) {
	defer p.f.Close()
	ours, err := p.f.Stat()
	if err != nil {
		return
	}
	if fi, err := os.Lstat(p.path); err != nil || !os.SameFile(fi, ours) {
		return
	}
	b := make([]byte, maxPIDFileSize+1)
	n, _ := p.f.ReadAt(b, 0)
	content := string(b[:n])
	if content == strconv.Itoa(pid)+"\n" || (p.created && content == "") {
		os.Remove(p.path)
	}
}

// firstLine returns s's first line, cut to at most n bytes.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n]
	}
	return s
}
