package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The one helper the tests share: a watcher over files in a temp dir, plus
// a sentinel file of its own, which lets a test assert that nothing else
// was reported.

const (
	// debounce is short, yet long next to the gaps inside one of the tests'
	// writes (open with O_TRUNC, write, close), even under -race on a busy
	// machine: a writer stalled longer than the debounce is seen half-way,
	// by design.
	debounce = 100 * time.Millisecond
	deadline = 5 * time.Second
)

type scenario struct {
	t           *testing.T
	root        string
	sentinel    string
	w           *Watcher
	evaluations chan struct{} // one per evaluation
	settles     int
}

// start watches paths (files already in root) and the sentinel.
func start(t *testing.T, debounce time.Duration, root string, paths ...string) *scenario {
	t.Helper()
	s := &scenario{t: t, root: root, evaluations: make(chan struct{}, 1024)}
	s.sentinel = filepath.Join(root, "sentinel")
	write(t, s.sentinel, "0")
	evaluated := func() {
		select {
		case s.evaluations <- struct{}{}:
		default: // never in these tests: they drain
		}
	}
	w, err := newWatcher(append(paths, s.sentinel), debounce, evaluated)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, w.Close()) })
	s.w = w
	s.drain()
	return s
}

// next returns the next event, failing after the deadline.
func (s *scenario) next() Event {
	s.t.Helper()
	select {
	case e, ok := <-s.w.Events():
		require.True(s.t, ok, "Events closed")
		return e
	case <-time.After(deadline):
		s.t.Fatalf("no event in %v", deadline)
		return Event{}
	}
}

// settle changes the sentinel and returns every event that came before its
// change did. Each evaluation hashes every file, and sends its events in the
// order of New's paths, the sentinel last: whatever was due for the other
// files by the time of the sentinel's change has come by then.
func (s *scenario) settle() []Event {
	s.t.Helper()
	s.settles++
	replace(s.t, s.sentinel, strconv.Itoa(s.settles))
	var others []Event
	for {
		e := s.next()
		if e.Path == s.sentinel {
			require.Equal(s.t, Event{Path: s.sentinel}, e)
			s.drain()
			return others
		}
		others = append(others, e)
	}
}

// evaluated waits for the watcher's next evaluation.
func (s *scenario) evaluated() {
	s.t.Helper()
	select {
	case <-s.evaluations:
	case <-time.After(deadline):
		s.t.Fatalf("no evaluation in %v", deadline)
	}
}

// drain forgets the evaluations signalled so far.
func (s *scenario) drain() {
	for {
		select {
		case <-s.evaluations:
		default:
			return
		}
	}
}

// watches counts the inotify watches the kernel holds for the watcher.
func (s *scenario) watches() int {
	s.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", s.w.in.fd))
	require.NoError(s.t, err)
	return strings.Count(string(b), "inotify wd:")
}

// write writes content in place, as `echo > file` does.
func write(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

// replace writes content to a temporary file and renames it over path, as
// editors save.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".swp")
	write(t, tmp, content)
	require.NoError(t, os.Rename(tmp, path))
}

// configMap lays out files as the kubelet does for a ConfigMap volume: each
// key a symlink `key -> ..data/key`, `..data -> ..TIMESTAMP`, a directory of
// real files. Called again, it swaps ..data to a new directory the way the
// kubelet's AtomicWriter does (`..data_tmp` created, renamed over `..data`),
// then removes the old one.
func configMap(t *testing.T, dir, timestamp string, files map[string]string) {
	t.Helper()
	data := filepath.Join(dir, "..data")
	old, err := os.Readlink(data)
	first := err != nil
	if first {
		require.ErrorIs(t, err, os.ErrNotExist)
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, timestamp), 0o755))
	for key, content := range files {
		write(t, filepath.Join(dir, timestamp, key), content)
	}
	require.NoError(t, os.Symlink(timestamp, filepath.Join(dir, "..data_tmp")))
	require.NoError(t, os.Rename(filepath.Join(dir, "..data_tmp"), data))
	if first {
		for key := range files {
			require.NoError(t, os.Symlink(filepath.Join("..data", key), filepath.Join(dir, key)))
		}
		return
	}
	require.NoError(t, os.RemoveAll(filepath.Join(dir, old)))
}
