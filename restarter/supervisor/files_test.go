package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

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
	require.NoError(t, clearBaseID(filepath.Join(dir, "missing")))
	for _, p := range []string{write("empty", ""), write("id", "123"), write("id-nl", "4294967295\n")} {
		require.NoError(t, clearBaseID(p))
		require.NoFileExists(t, p)
	}
	// Anything else: a usage error, left alone.
	var usage *UsageError
	for _, p := range []string{write("yaml", "admin: {}\n"), write("too-big", "4294967296"), filepath.Join(dir, "sub")} {
		os.Mkdir(filepath.Join(dir, "sub"), 0o755)
		err := clearBaseID(p)
		require.True(t, errors.As(err, &usage), "%s: %v", p, err)
		_, statErr := os.Stat(p)
		require.NoError(t, statErr, "%s left alone", p)
	}
}

func TestPIDFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "restarter.pid")
	p, err := takePIDFile(path)
	require.NoError(t, err)
	// Taken but not yet written: a second taker fails, naming no pid.
	_, err = takePIDFile(path)
	require.ErrorContains(t, err, "held by another running restarter")
	require.NoError(t, p.write(4242))
	_, err = takePIDFile(path)
	require.EqualError(t, err, "pid file "+path+": held by another running restarter (PID=4242)")
	b, _ := os.ReadFile(path)
	require.Equal(t, "4242\n", string(b))
	// Released with another pid in it: left alone.
	require.NoError(t, os.WriteFile(path, []byte("7\n"), 0o644))
	p.release(4242)
	require.FileExists(t, path)
	// Released with its pid: removed; created and never written: removed.
	p, err = takePIDFile(path)
	require.NoError(t, err)
	require.NoError(t, p.write(4242))
	p.release(4242)
	require.NoFileExists(t, path)
	p, err = takePIDFile(path)
	require.NoError(t, err)
	p.release(4242)
	require.NoFileExists(t, path)
	// A directory is named as such.
	_, err = takePIDFile(t.TempDir())
	require.ErrorContains(t, err, "is a directory")
}
