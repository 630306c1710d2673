package fakeenvoytest

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
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

// StaticBaseID picks a base id as a test picks a port: a free one. It is
// above 0x0FFFFFFF, the largest id --use-dynamic-base-id can choose, so
// that a static id never collides with a dynamic one; at random, so that
// sandboxes running in parallel (in this process or another) do not
// collide with each other; and free on this host: no shared memory region
// of that id exists (one left by an earlier run may hold INITIALIZING,
// which the next hot restart would trip over) and no domain socket of its
// ids is bound, under any socket path. It retries otherwise.
func StaticBaseID() uint32 {
	for {
		id := 300_000_000 + rand.Uint32N(700_000_000)
		if baseIDFree(id) {
			return id
		}
	}
}

// baseIDFree reports whether neither id's shared memory region nor any of
// its domain sockets (<path>_parent_<id*10+n>, _child_, _udp_parent_,
// _udp_child_, n = epoch%3) exists; abstract sockets show in
// /proc/net/unix too, with an @.
func baseIDFree(id uint32) bool {
	if _, err := os.Lstat(envoyshm.Path(id)); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	sockets, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return true // no /proc: the region is what collides
	}
	scaled := uint64(id) * 10
	for _, line := range strings.Split(string(sockets), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue // the header, or a socket with no name
		}
		name := f[len(f)-1]
		for n := range uint64(3) {
			suffix := "_" + strconv.FormatUint(scaled+n, 10)
			if strings.HasSuffix(name, "_parent"+suffix) || strings.HasSuffix(name, "_child"+suffix) {
				return false
			}
		}
	}
	return true
}

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
