package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestInPlaceWriteIsOneChange(t *testing.T) {
	root := t.TempDir()
	envoy := filepath.Join(root, "envoy.yaml")
	write(t, envoy, "v1")
	s := start(t, debounce, root, envoy)

	write(t, envoy, "v2")

	require.Equal(t, []Event{{Path: envoy}}, s.settle())
}

func TestEditorRenameOverIsOneChange(t *testing.T) {
	root := t.TempDir()
	envoy := filepath.Join(root, "envoy.yaml")
	write(t, envoy, "v1")
	s := start(t, debounce, root, envoy)

	replace(t, envoy, "v2")

	require.Equal(t, []Event{{Path: envoy}}, s.settle())
}

func TestBurstOfWritesIsOneEvaluationAndOneChange(t *testing.T) {
	root := t.TempDir()
	envoy := filepath.Join(root, "envoy.yaml")
	write(t, envoy, "v0")
	// Thirty writes take about a millisecond; a debounce far longer keeps
	// them one burst even when the writer is descheduled for a while.
	s := start(t, 5*debounce, root, envoy)

	for i := 1; i <= 30; i++ {
		write(t, envoy, fmt.Sprintf("v%d", i))
	}

	require.Equal(t, Event{Path: envoy}, s.next())
	require.Len(t, s.evaluations, 1, "the debounce makes the burst one evaluation")
	require.Empty(t, s.settle())
}

func TestTouchAndIdenticalRewriteReportNothing(t *testing.T) {
	root := t.TempDir()
	envoy := filepath.Join(root, "envoy.yaml")
	write(t, envoy, "v1")
	s := start(t, debounce, root, envoy)

	// touch: open for writing, close, set the times (IN_CLOSE_WRITE, IN_ATTRIB).
	f, err := os.OpenFile(envoy, os.O_WRONLY, 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	now := time.Now()
	require.NoError(t, os.Chtimes(envoy, now, now))
	s.evaluated()
	require.Empty(t, s.settle())

	write(t, envoy, "v1")
	s.evaluated()
	require.Empty(t, s.settle())

	replace(t, envoy, "v1")
	s.evaluated()
	require.Empty(t, s.settle())
}

func TestConfigMapSwapIsOneChange(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "config")
	envoy := filepath.Join(dir, "envoy.yaml")
	configMap(t, dir, "..2026_12_02_10_00_00.000000001", map[string]string{"envoy.yaml": "v1", "other.yaml": "a"})
	s := start(t, debounce, root, envoy)
	// root (the sentinel), config, and the timestamped directory.
	require.Equal(t, 3, s.watches())

	configMap(t, dir, "..2026_12_02_10_01_00.000000002", map[string]string{"envoy.yaml": "v2", "other.yaml": "a"})
	require.Equal(t, []Event{{Path: envoy}}, s.settle())
	require.Equal(t, 3, s.watches(), "the old directory's watch went with it")

	// An update of another key leaves envoy.yaml's content as it was.
	configMap(t, dir, "..2026_12_02_10_02_00.000000003", map[string]string{"envoy.yaml": "v2", "other.yaml": "b"})
	require.Empty(t, s.settle())

	// The watch moved to the new directory: a write there is seen.
	write(t, filepath.Join(dir, "..2026_12_02_10_02_00.000000003", "envoy.yaml"), "v3")
	require.Equal(t, []Event{{Path: envoy}}, s.settle())
}

func TestSymlinkRetargetMovesTheWatch(t *testing.T) {
	root := t.TempDir()
	for _, dir := range []string{"a", "b", "c"} {
		require.NoError(t, os.Mkdir(filepath.Join(root, dir), 0o755))
	}
	envoy := filepath.Join(root, "a", "envoy.yaml")
	fromB, fromC := filepath.Join(root, "b", "envoy.yaml"), filepath.Join(root, "c", "envoy.yaml")
	write(t, fromB, "b1")
	write(t, fromC, "c1")
	require.NoError(t, os.Symlink("../b/envoy.yaml", envoy))
	s := start(t, debounce, root, envoy)
	require.Equal(t, 3, s.watches()) // root, a, b

	write(t, fromB, "b2")
	require.Equal(t, []Event{{Path: envoy}}, s.settle())

	// ln -sfn, atomically: a new symlink renamed over the old one.
	require.NoError(t, os.Symlink(fromC, envoy+".tmp"))
	require.NoError(t, os.Rename(envoy+".tmp", envoy))
	require.Equal(t, []Event{{Path: envoy}}, s.settle())
	require.Equal(t, 3, s.watches(), "b's watch is dropped, c's added")

	write(t, fromB, "b3")
	require.Empty(t, s.settle())
	write(t, fromC, "c2")
	require.Equal(t, []Event{{Path: envoy}}, s.settle())
}

func TestRemovedFileIsGoneThenBack(t *testing.T) {
	root := t.TempDir()
	envoy := filepath.Join(root, "envoy.yaml")
	write(t, envoy, "v1")
	s := start(t, debounce, root, envoy)

	require.NoError(t, os.Remove(envoy))
	require.Equal(t, []Event{{Path: envoy, Gone: true}}, s.settle())
	write(t, envoy, "v2")
	require.Equal(t, []Event{{Path: envoy}}, s.settle())

	// Back with the content last reported: nothing to restart for.
	require.NoError(t, os.Remove(envoy))
	require.Equal(t, []Event{{Path: envoy, Gone: true}}, s.settle())
	replace(t, envoy, "v2")
	require.Empty(t, s.settle())
}

func TestRemovedDirectoryIsGoneThenBack(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "config")
	envoy := filepath.Join(dir, "envoy.yaml")
	require.NoError(t, os.Mkdir(dir, 0o755))
	write(t, envoy, "v1")
	s := start(t, debounce, root, envoy)

	require.NoError(t, os.RemoveAll(dir))
	require.Equal(t, []Event{{Path: envoy, Gone: true}}, s.settle())

	// Watched through root now, for the name "config".
	require.NoError(t, os.Mkdir(dir, 0o755))
	write(t, envoy, "v2")
	require.Equal(t, []Event{{Path: envoy}}, s.settle())
	write(t, envoy, "v3")
	require.Equal(t, []Event{{Path: envoy}}, s.settle())
}

func TestNotARegularFileIsAnError(t *testing.T) {
	root := t.TempDir()
	envoy := filepath.Join(root, "envoy.yaml")
	write(t, envoy, "v1")
	s := start(t, debounce, root, envoy)

	// A FIFO put in its place: opening it must not hang the watcher.
	require.NoError(t, unix.Mkfifo(envoy+".tmp", 0o644))
	require.NoError(t, os.Rename(envoy+".tmp", envoy))
	events := s.settle()
	require.Len(t, events, 1)
	require.Equal(t, envoy, events[0].Path)
	require.ErrorContains(t, events[0].Err, "not a regular file")

	replace(t, envoy, "v2")
	require.Equal(t, []Event{{Path: envoy}}, s.settle())
}

func TestUnreadEventsWaitAsOneLatestState(t *testing.T) {
	root := t.TempDir()
	envoy := filepath.Join(root, "envoy.yaml")
	write(t, envoy, "v1")
	s := start(t, debounce, root, envoy)

	// Nobody reads Events meanwhile: the watcher goes on evaluating.
	write(t, envoy, "v2")
	s.evaluated()
	require.NoError(t, os.Remove(envoy))
	s.evaluated()
	write(t, envoy, "v3")
	s.evaluated()
	require.Equal(t, []Event{{Path: envoy}}, s.settle())

	// Gone, then back as it was reported: the consumer has nothing to learn.
	require.NoError(t, os.Remove(envoy))
	s.evaluated()
	write(t, envoy, "v3")
	s.evaluated()
	require.Empty(t, s.settle())
}

func TestRelativePathIsMadeAbsolute(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	write(t, "envoy.yaml", "v1")
	s := start(t, debounce, root, "envoy.yaml")

	write(t, "envoy.yaml", "v2")

	require.Equal(t, []Event{{Path: filepath.Join(root, "envoy.yaml")}}, s.settle())
}

func TestNewRefuses(t *testing.T) {
	root := t.TempDir()
	envoy := filepath.Join(root, "envoy.yaml")
	write(t, envoy, "v1")
	missing := filepath.Join(root, "missing.yaml")
	for name, tc := range map[string]struct {
		paths    []string
		debounce time.Duration
		want     string
	}{
		"a missing path":      {[]string{envoy, missing}, time.Second, "open " + missing + ": no such file or directory"},
		"a directory":         {[]string{root}, time.Second, root + ": not a regular file (d---------)"},
		"no path":             {nil, time.Second, "no path"},
		"a zero debounce":     {[]string{envoy}, 0, "debounce 0s is not positive"},
		"a file as directory": {[]string{filepath.Join(envoy, "x")}, time.Second, "not a directory"},
	} {
		t.Run(name, func(t *testing.T) {
			w, err := New(tc.paths, tc.debounce)
			require.ErrorContains(t, err, tc.want)
			require.Nil(t, w)
		})
	}
}

func TestCloseStopsEverything(t *testing.T) {
	root := t.TempDir()
	envoy := filepath.Join(root, "envoy.yaml")
	write(t, envoy, "v1")
	fds := inotifyFDs(t)
	evaluated := make(chan struct{}, 1)
	w, err := newWatcher([]string{envoy}, debounce, func() {
		select {
		case evaluated <- struct{}{}:
		default:
		}
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() }) // should the test fail before Close
	<-evaluated                         // New's own
	require.Equal(t, fds+1, inotifyFDs(t))
	require.Eventually(t, func() bool { return slices.Equal([]string{"loop", "read"}, watcherGoroutines()) }, deadline, time.Millisecond)

	// An event is due and nobody reads it: Close does not wait for a reader.
	write(t, envoy, "v2")
	select {
	case <-evaluated:
	case <-time.After(deadline):
		t.Fatalf("no evaluation in %v", deadline)
	}
	closed := make(chan error, 1)
	go func() { closed <- w.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(deadline):
		t.Fatalf("Close did not return in %v", deadline)
	}

	_, open := <-w.Events()
	require.False(t, open, "Events is closed")
	require.Equal(t, fds, inotifyFDs(t))
	// Close waited for both; they may still be returning from their last defer.
	require.Eventually(t, func() bool { return len(watcherGoroutines()) == 0 }, deadline, time.Millisecond)
	require.NoError(t, w.Close(), "a second Close")
}

// watcherGoroutines lists the Watcher methods goroutines are running.
func watcherGoroutines() []string {
	buf := make([]byte, 1<<20)
	var methods []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if _, rest, ok := strings.Cut(g, "watch.(*Watcher)."); ok {
			method, _, _ := strings.Cut(rest, "(")
			methods = append(methods, method)
		}
	}
	slices.Sort(methods)
	return methods
}

// inotifyFDs counts the process's open inotify fds.
func inotifyFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}
