package fakeenvoytest

import (
	"fmt"
	"math/rand/v2"
	"net"
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

	mu           sync.Mutex
	baseIDFiles  []string       // --base-id-path files whose ids' regions Close removes
	reservations []net.Listener // FreePort's
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
// (Envoy never removes its region), and releases FreePort's ports. It
// leaves the directory to its owner.
func (sb *Sandbox) Close() {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	for _, r := range sb.reservations {
		r.Close()
	}
	sb.reservations = nil
	_ = os.Remove(envoyshm.Path(sb.BaseID))
	for _, path := range sb.baseIDFiles {
		if b, err := os.ReadFile(path); err == nil {
			if id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
				_ = os.Remove(envoyshm.Path(uint32(id)))
			}
		}
	}
}

// FreePort returns a loopback TCP port nobody listens on, reserved for the
// sandbox until Close, for a listener that must keep its port across hot
// restarts (Envoy hands a listen socket over by address, so a port-0
// listener would get a new port each epoch). It is chosen below the
// kernel's ephemeral range, so that no client connection takes it between
// the check and fakeenvoy's bind, and verified free by binding it. The
// reservation is an abstract unix socket named after the port, which every
// sandbox on the host checks and holds: two sandboxes, in this process or
// any other (parallel test binaries, Bazel's --runs_per_test), never get
// the same port.
func (sb *Sandbox) FreePort() (int, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				low = n
			}
		}
	}
	for range 1000 {
		port := 10000 + rand.IntN(low-10000)
		reservation, err := net.Listen("unix", "@fakeenvoytest-port-"+strconv.Itoa(port))
		if err != nil {
			continue // another sandbox's
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			reservation.Close()
			continue
		}
		ln.Close()
		sb.mu.Lock()
		sb.reservations = append(sb.reservations, reservation)
		sb.mu.Unlock()
		return port, nil
	}
	return 0, fmt.Errorf("no free loopback port between 10000 and %d", low)
}
