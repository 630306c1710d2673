package fakeenvoytest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
)

// Sandbox is one fakeenvoy scenario's private world, shared by the
// integration scenarios, fakeenvoy's own tests and tools/bench: a directory,
// a static base id that no other sandbox uses (so its domain sockets and
// its shared memory region are its own), and the removal of the shared
// memory regions that fakeenvoy, like Envoy, leaves behind.
type Sandbox struct {
	Dir    string
	BaseID uint32 // for --base-id; see StaticBaseID

	mu          sync.Mutex
	baseIDFiles []string // --base-id-path files whose ids' regions Close removes
}

// NewSandbox makes a sandbox in a temp dir of the test; the test's cleanup
// closes it.
func NewSandbox(t testing.TB) *Sandbox {
	t.Helper()
	sb := OpenSandbox(t.TempDir())
	t.Cleanup(sb.Close)
	return sb
}

// OpenSandbox makes a sandbox in dir, for a program that manages dir
// itself (tools/bench); the program calls Close.
func OpenSandbox(dir string) *Sandbox {
	return &Sandbox{Dir: dir, BaseID: StaticBaseID()}
}

// StaticBaseID picks a base id above 0x0FFFFFFF, the largest id
// --use-dynamic-base-id can choose, so that a static id never collides with
// a dynamic one, and at random, so that sandboxes running in parallel (in
// this process or another) do not collide with each other.
func StaticBaseID() uint32 { return 300_000_000 + rand.Uint32N(700_000_000) }

// Path is name in the sandbox's directory.
func (sb *Sandbox) Path(name string) string { return filepath.Join(sb.Dir, name) }

// SocketPath is a --socket-path private to the sandbox: a path socket under
// its directory or, when that is too long for a unix socket name (Bazel's
// temp dirs can be), an abstract name unique to the base id.
func (sb *Sandbox) SocketPath() string {
	p := sb.Path("hr")
	if len(p)+len("_parent_")+11 < 100 {
		return p
	}
	return fmt.Sprintf("@fakeenvoy-sandbox-%d", sb.BaseID)
}

// WriteBootstrap writes b's YAML to name in the sandbox and returns its path.
func (sb *Sandbox) WriteBootstrap(name string, b Bootstrap) (string, error) {
	p := sb.Path(name)
	return p, os.WriteFile(p, []byte(b.YAML()), 0o644)
}

// RemoveRegionOf makes Close also remove the shared memory region of the
// base id an epoch wrote to path (--base-id-path), if it did: a dynamic id
// is known only from that file.
func (sb *Sandbox) RemoveRegionOf(path string) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.baseIDFiles = append(sb.baseIDFiles, path)
}

// Close removes the shared memory regions of the sandbox's base id and of
// the ids in the files given to RemoveRegionOf, whatever the epochs did
// (Envoy never removes its region). It leaves the directory to its owner.
func (sb *Sandbox) Close() {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	_ = os.Remove(envoyshm.Path(sb.BaseID))
	for _, path := range sb.baseIDFiles {
		removeRegionOf(path)
	}
	RemoveRegionsUnder(sb.Dir)
}

// RemoveRegionsUnder removes the shared memory region of every base id
// written to a file named *base-id* below dir (a --base-id-path that a
// scenario's start script or example chose), as Envoy never does.
func RemoveRegionsUnder(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.Contains(d.Name(), "base-id") {
			removeRegionOf(path)
		}
		return nil
	})
}

// removeRegionOf removes the region of the base id in the file at path.
func removeRegionOf(path string) {
	if b, err := os.ReadFile(path); err == nil {
		if id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			_ = os.Remove(envoyshm.Path(uint32(id)))
		}
	}
}
