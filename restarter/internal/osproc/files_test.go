package osproc

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/envoy-restarter/restarter/restarter/internal/config"

	"github.com/stretchr/testify/require"
)

func TestClearBaseID(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	// Nothing there, an empty file, a base id: cleared.
	require.NoError(t, ClearBaseID(filepath.Join(dir, "missing")))
	for _, p := range []string{write("empty", ""), write("id", "123"), write("id-nl", "4294967295\n")} {
		require.NoError(t, ClearBaseID(p))
		require.NoFileExists(t, p)
	}
	// Anything else: a usage error, left alone.
	var usage *config.UsageError
	for _, p := range []string{write("yaml", "admin: {}\n"), write("too-big", "4294967296"), filepath.Join(dir, "sub")} {
		os.Mkdir(filepath.Join(dir, "sub"), 0o755)
		err := ClearBaseID(p)
		require.True(t, errors.As(err, &usage), "%s: %v", p, err)
		_, statErr := os.Stat(p)
		require.NoError(t, statErr, "%s left alone", p)
	}
}

func TestPIDFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "restarter.pid")
	p, err := TakePIDFile(path)
	require.NoError(t, err)
	// Taken but not yet written: a second taker fails, naming no pid.
	_, err = TakePIDFile(path)
	require.ErrorContains(t, err, "held by another running restarter")
	require.NoError(t, p.Write(4242))
	_, err = TakePIDFile(path)
	require.EqualError(t, err, "pid file "+path+": held by another running restarter (PID=4242)")
	b, _ := os.ReadFile(path)
	require.Equal(t, "4242\n", string(b))
	// Released with another pid in it: left alone.
	require.NoError(t, os.WriteFile(path, []byte("7\n"), 0o644))
	p.Release(4242)
	require.FileExists(t, path)
	// Released with its pid: removed; created and never written: removed.
	p, err = TakePIDFile(path)
	require.NoError(t, err)
	require.NoError(t, p.Write(4242))
	p.Release(4242)
	require.NoFileExists(t, path)
	p, err = TakePIDFile(path)
	require.NoError(t, err)
	p.Release(4242)
	require.NoFileExists(t, path)
	// A directory is named as such.
	_, err = TakePIDFile(t.TempDir())
	require.ErrorContains(t, err, "is a directory")
}

// Issue 19, defect 1: --pid-file never follows a symlink, never writes to
// anything but a regular file that is empty or holds a pid, and leaves what
// it refused as it was.
func TestPIDFileRefusesWhatIsNotAPIDFile(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "envoy.yaml")
	require.NoError(t, os.WriteFile(victim, []byte("admin: {}\n"), 0o644))
	link := filepath.Join(dir, "pid.lnk")
	require.NoError(t, os.Symlink(victim, link))
	dangling := filepath.Join(dir, "dangling.lnk")
	require.NoError(t, os.Symlink(filepath.Join(dir, "created-through-link"), dangling))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	notAPID := filepath.Join(dir, "not-a-pid")
	require.NoError(t, os.WriteFile(notAPID, []byte("12 34\n"), 0o644))
	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(sub, 0o755))

	tests := []struct{ path, want string }{
		{link, "flag -pid-file: " + link + " is a symbolic link; refusing to follow it"},
		{dangling, "flag -pid-file: " + dangling + " is a symbolic link; refusing to follow it"},
		{fifo, "flag -pid-file: " + fifo + " is not a regular file; refusing to write to it"},
		{victim, `flag -pid-file: ` + victim + ` holds something other than a pid (10 bytes starting "admin: {}"); refusing to overwrite it`},
		{notAPID, `flag -pid-file: ` + notAPID + ` holds something other than a pid (6 bytes starting "12 34"); refusing to overwrite it`},
		{sub, "flag -pid-file: " + sub + " is a directory; give the path of a file"},
	}
	for _, tt := range tests {
		_, err := TakePIDFile(tt.path)
		var usage *config.UsageError
		require.True(t, errors.As(err, &usage), "%s: want a usage error, got %v", tt.path, err)
		require.EqualError(t, err, tt.want)
	}
	b, err := os.ReadFile(victim)
	require.NoError(t, err)
	require.Equal(t, "admin: {}\n", string(b), "the victim is untouched")
	b, err = os.ReadFile(notAPID)
	require.NoError(t, err)
	require.Equal(t, "12 34\n", string(b))
	require.NoFileExists(t, filepath.Join(dir, "created-through-link"))
	for _, p := range []string{link, dangling} {
		fi, err := os.Lstat(p)
		require.NoError(t, err)
		require.Equal(t, os.ModeSymlink, fi.Mode().Type(), "%s is still a symlink", p)
	}
}

// Issue 19, defect 1: a pid file left by a dead run (a pid, with or without
// its newline) or an empty one is taken over.
func TestPIDFileTakesOverAStaleOne(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"stale": "999999\n", "stale-no-newline": "999999", "empty": ""} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		p, err := TakePIDFile(path)
		require.NoError(t, err, name)
		require.NoError(t, p.Write(4242))
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, "4242\n", string(b), name)
		p.Release(4242)
		require.NoFileExists(t, path, name)
	}
}

// Issue 19, defect 1: at exit the restarter removes only the file it wrote:
// not one put in its place, even one holding the same pid.
func TestPIDFileReleaseRemovesOnlyItsOwnFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "restarter.pid")
	p, err := TakePIDFile(path)
	require.NoError(t, err)
	require.NoError(t, p.Write(4242))
	// Replaced (a new inode) with the same content,
	require.NoError(t, os.Remove(path))
	require.NoError(t, os.WriteFile(path, []byte("4242\n"), 0o644))
	p.Release(4242)
	// it is someone else's file: left alone.
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "4242\n", string(b))

	// Replaced by a symlink to a file holding the pid: neither is removed.
	target := path + ".target"
	require.NoError(t, os.Rename(path, target))
	p, err = TakePIDFile(path)
	require.NoError(t, err)
	require.NoError(t, p.Write(4242))
	require.NoError(t, os.Remove(path))
	require.NoError(t, os.Symlink(target, path))
	p.Release(4242)
	require.FileExists(t, target)
	_, err = os.Lstat(path)
	require.NoError(t, err, "the symlink is left alone")
}
