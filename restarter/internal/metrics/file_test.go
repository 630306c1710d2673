package metrics

import (
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWriteFileReplacesTheFileWhole(t *testing.T) {
	// Given a metrics file that a reader (node_exporter) has open,
	dir := t.TempDir()
	path := filepath.Join(dir, "envoy_restarter.prom")
	before := Snapshot{Epoch: 1}
	require.NoError(t, WriteFile(path, before))
	reader, err := os.Open(path)
	require.NoError(t, err)
	defer reader.Close()

	// when the metrics change,
	after := realisticSnapshot()
	require.NoError(t, WriteFile(path, after))

	// then the open file still holds the old metrics whole (the new ones
	// were renamed over it, not written into it),
	old, err := io.ReadAll(reader)
	require.NoError(t, err)
	require.Equal(t, string(written(t, before)), string(old))
	// the path holds the new ones, mode 0644,
	now, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(written(t, after)), string(now))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	// and nothing else is left in the directory.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left")
}

func TestWriteFileReaderNeverSeesAPart(t *testing.T) {
	// Given a reader reading the metrics file over and over,
	path := filepath.Join(t.TempDir(), "envoy_restarter.prom")
	var s Snapshot
	require.NoError(t, WriteFile(path, s))
	wrote := map[string]bool{string(written(t, s)): true}
	done := make(chan struct{})
	read := map[string]bool{}
	var readErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			b, err := os.ReadFile(path)
			if err != nil {
				readErr = err
				return
			}
			read[string(b)] = true
		}
	}()

	// when the restarter rewrites it 200 times, its length changing,
	for i := range 200 {
		s.Durations.Observe(time.Duration(i) * time.Second)
		s.Restarts.OK = uint64(i) * 1_000_003
		s.LastRestart = time.Unix(int64(i)*1_000_001, 0)
		require.NoError(t, WriteFile(path, s))
		wrote[string(written(t, s))] = true
	}
	close(done)
	wg.Wait()

	// then every read is one of the files written, whole.
	require.NoError(t, readErr)
	require.NotEmpty(t, read)
	for r := range read {
		require.True(t, wrote[r], "a read that is no whole file written:\n%s", r)
	}
}

func TestWriteFileErrorLeavesNothingBehind(t *testing.T) {
	// Given a path the metrics cannot be renamed to (a directory),
	dir := t.TempDir()
	path := filepath.Join(dir, "envoy_restarter.prom")
	require.NoError(t, os.Mkdir(path, 0o755))

	// when the metrics are written there, then it fails naming the path,
	err := WriteFile(path, realisticSnapshot())
	require.ErrorContains(t, err, path)

	// and leaves no temporary file.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the directory")

	// A directory that does not exist fails too.
	require.Error(t, WriteFile(filepath.Join(dir, "missing", "envoy_restarter.prom"), Snapshot{}))
}
