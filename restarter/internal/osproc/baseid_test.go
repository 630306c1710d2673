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

func TestBaseIDString(t *testing.T) {
	// A base id is written as Envoy takes it: decimal, nothing else.
	require.Equal(t, "0", BaseID(0).String())
	require.Equal(t, "4294967295", BaseID(4294967295).String())
}

func TestReadBaseID(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	// Given what Envoy writes (no newline) or a file with surrounding space,
	// the id is read back.
	id, err := ReadBaseID(write("id", "123"))
	require.NoError(t, err)
	require.Equal(t, BaseID(123), id)
	id, err = ReadBaseID(write("id-nl", " 70\n"))
	require.NoError(t, err)
	require.Equal(t, BaseID(70), id)

	// Given something else, the error names the file and what it holds.
	p := write("yaml", "admin: {}\n")
	_, err = ReadBaseID(p)
	require.EqualError(t, err, p+`: "admin: {}" is not a base id`)
	p = write("too-big", "4294967296")
	_, err = ReadBaseID(p)
	require.EqualError(t, err, p+`: "4294967296" is not a base id`)

	// Given no file (Envoy has not written it yet), the error says so.
	_, err = ReadBaseID(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestClearBaseIDRefusesWhatItCannotTell(t *testing.T) {
	dir := t.TempDir()
	// Given a FIFO at the path, it is a usage error, and left alone.
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	err := ClearBaseID(fifo)
	var usage *config.UsageError
	require.True(t, errors.As(err, &usage), "%v", err)
	require.EqualError(t, err, "flag -base-id-path: "+fifo+" is not a regular file; refusing to delete it")
	_, err = os.Lstat(fifo)
	require.NoError(t, err, "left alone")

	// Given a path that cannot be looked at (under a regular file), the
	// error names it and why, and is no usage error.
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	err = ClearBaseID(filepath.Join(file, "id"))
	require.EqualError(t, err, "base id file "+filepath.Join(file, "id")+": not a directory")
	require.False(t, errors.As(err, &usage))

	// Given a long file that is no base id, the message quotes only the
	// start of its first line.
	long := filepath.Join(dir, "long")
	require.NoError(t, os.WriteFile(long, []byte("static_resources: {listeners: [], clusters: []}\nx"), 0o644))
	err = ClearBaseID(long)
	require.EqualError(t, err, `flag -base-id-path: `+long+` holds something other than a base id (49 bytes starting "static_resources: {listeners: [], cluste"); refusing to delete it`)
}
