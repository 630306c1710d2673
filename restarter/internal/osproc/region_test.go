package osproc

import (
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/internal/envoyshm"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The helper process (the test binary re-executed) maps the region at
// $OSPROC_TEST_REGION as an Envoy epoch does, writes its pid to
// $OSPROC_TEST_READY, and exits when its stdin is closed.
const helperRegionEnv, helperReadyEnv = "OSPROC_TEST_REGION", "OSPROC_TEST_READY"

func TestHelperProcessMapsRegion(t *testing.T) {
	path := os.Getenv(helperRegionEnv)
	if path == "" {
		t.Skip("the helper process of startMappingChild")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = unix.Mmap(int(f.Fd()), 0, envoyshm.Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(os.Getenv(helperReadyEnv), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644))
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// startMappingChild starts an epoch as a start script that does not exec
// runs it: a shell whose child (the helper process) maps the region at
// path. It returns the shell's pid once the child has mapped the region;
// both exit when the test ends.
func startMappingChild(t *testing.T, path string) int {
	t.Helper()
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	sh := exec.Command("/bin/sh", "-c", `"$0" -test.run='^TestHelperProcessMapsRegion$' 2>stderr; :`, os.Args[0])
	sh.Dir = dir
	sh.Env = append(os.Environ(), helperRegionEnv+"="+path, helperReadyEnv+"="+ready)
	stdin, err := sh.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, sh.Start())
	exited := make(chan struct{})
	go func() { sh.Wait(); close(exited) }()
	child := 0
	t.Cleanup(func() {
		stdin.Close() // the child exits, then the shell
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			if child != 0 {
				unix.Kill(child, unix.SIGKILL)
			}
			sh.Process.Kill()
			<-exited
			t.Error("the helper process did not exit when its stdin closed")
		}
	})
	child = readPID(t, ready)
	return sh.Process.Pid
}

// setFlags writes the flags_ word of the region at path, as an epoch does.
func setFlags(t *testing.T, path string, flags uint64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteAt(binary.LittleEndian.AppendUint64(nil, flags), envoyshm.OffsetFlags)
	require.NoError(t, err)
}

func TestRegionInMapsOfAStartScriptsChild(t *testing.T) {
	// Given a start script that does not exec, whose child maps the region,
	path, _ := envoyRegionFile(t, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	script := startMappingChild(t, path)

	// the region is found through the script's pid.
	ref, alive := regionInMaps(script)
	require.True(t, alive)
	require.Equal(t, refOf(t, path), ref)
}

func TestRegionInMapsOfAChildNotYetExeced(t *testing.T) {
	// A process running the restarter's executable (a child between fork
	// and exec: here the test process itself) maps nothing of the epoch's,
	// whatever its maps show.
	ref, alive := regionInMaps(os.Getpid())
	require.True(t, alive)
	require.Equal(t, regionRef{}, ref)
}

func TestRegionInSkipsMalformedLines(t *testing.T) {
	// Lines naming a region path but not in maps' format are skipped.
	maps := strings.Join([]string{
		"7f0000000000-7f0000001000 rw-s 00000000 00:1a 100 /dev/shm/envoy_shared_memory_0 extra",
		"7f0000000000-7f0000001000 rw-s 00000000 zz:1a 100 /dev/shm/envoy_shared_memory_0",
		"7f0000000000-7f0000001000 rw-s 00000000 00:1a x /dev/shm/envoy_shared_memory_0",
		"7f0000000000-7f0000001000 rw-s 00000000 001a 100 /dev/shm/envoy_shared_memory_0",
	}, "\n")
	_, ok := regionIn([]byte(maps))
	require.False(t, ok)
}

func TestWordAtBeyondTheEnd(t *testing.T) {
	// A word past the end of a short file reads as 0; others little-endian.
	require.Zero(t, wordAt(make([]byte, 12), 8))
	require.Equal(t, uint64(0x0102), wordAt([]byte{0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0}, 4))
}

func TestFindMapsARegionOnce(t *testing.T) {
	// Given a region found once, finding it again is the same mapping.
	path, _ := envoyRegionFile(t, envoyshm.Size, envoyshm.Version, envoyshm.Size)
	g := NewInitGate(time.Second)
	first, err := g.find(refOf(t, path))
	require.NoError(t, err)
	again, err := g.find(refOf(t, path))
	require.NoError(t, err)
	require.Same(t, first, again)
	require.Same(t, first, g.current())
}
