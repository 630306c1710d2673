package osproc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPIDFileWriteErrorsNameTheFile(t *testing.T) {
	// Given a pid file taken, whose descriptor was closed under it,
	path := filepath.Join(t.TempDir(), "restarter.pid")
	p, err := TakePIDFile(path)
	require.NoError(t, err)
	require.NoError(t, p.f.Close())

	// writing fails, naming the file,
	err = p.Write(4242)
	require.ErrorIs(t, err, os.ErrClosed)
	require.ErrorContains(t, err, "pid file "+path+": ")

	// and releasing it leaves it alone: it cannot be told to be ours.
	p.Release(4242)
	require.FileExists(t, path)
}

func TestPIDFileWriteErrorAfterTruncate(t *testing.T) {
	// Given a pid file whose descriptor takes no positioned writes (O_APPEND),
	path := filepath.Join(t.TempDir(), "restarter.pid")
	require.NoError(t, os.WriteFile(path, []byte("7\n"), 0o644))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	p := &PIDFile{path: path, f: f}

	// when the pid is written, the error names the file.
	err = p.Write(4242)
	require.ErrorContains(t, err, "pid file "+path+": ")
	require.ErrorContains(t, err, "O_APPEND")
}

func TestTakePIDFileOpenError(t *testing.T) {
	// Given a path in a directory that does not exist, the error names the
	// path and the errno, without the os.PathError's repetition.
	path := filepath.Join(t.TempDir(), "missing", "restarter.pid")
	_, err := TakePIDFile(path)
	require.EqualError(t, err, "pid file "+path+": no such file or directory")
}

func TestPIDFileRefusalQuotesItsStart(t *testing.T) {
	// Given a pid file path holding more than a pid file ever does, the
	// message gives its size and quotes only what was read of it.
	path := filepath.Join(t.TempDir(), "restarter.pid")
	require.NoError(t, os.WriteFile(path, []byte("0123456789012345678901234567890123456789XYZ"), 0o644))
	_, err := TakePIDFile(path)
	require.EqualError(t, err, `flag -pid-file: `+path+` holds something other than a pid (43 bytes starting "012345678901234567890123456789012"); refusing to overwrite it`)
}
