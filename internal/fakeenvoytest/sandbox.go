package fakeenvoytest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// Sandbox is one fakeenvoy scenario's private world, shared by the
// integration scenarios, fakeenvoy's own tests and tools/bench: a directory
// and a static base id that no other sandbox uses (so its domain sockets and
// its shared memory region are its own). The regions fakeenvoy, like Envoy,
// leaves behind are removed through LogRegions.
type Sandbox struct {
	Dir    string
	BaseID uint32 // for --base-id; see StaticBaseID
}

// NewSandbox makes a sandbox in a temp dir of the test.
func NewSandbox(t testing.TB) *Sandbox {
	t.Helper()
	return OpenSandbox(t.TempDir())
}

// OpenSandbox makes a sandbox in dir, for a program that manages dir
// itself (tools/bench).
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
