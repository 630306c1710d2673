package main

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/server"
	"github.com/envoy-restarter/restarter/internal/envoyshm"
	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

const wait = proctest.Timeout

// sandbox is fakeenvoytest's sandbox (a temp dir, a base id of its own, so
// its domain sockets and shared memory collide with nobody's) running
// fakeenvoy directly, with kernel-chosen loopback ports.
type sandbox struct {
	*fakeenvoytest.Sandbox
	t         *testing.T
	fakeenvoy string
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	t.Parallel()
	return &sandbox{Sandbox: fakeenvoytest.NewSandbox(t), t: t, fakeenvoy: proctest.Binary(t, "fakeenvoy")}
}

// config writes a bootstrap with one listener on port (0: kernel's choice)
// logging to access.log, and an admin on a kernel-chosen port.
func (sb *sandbox) config(name string, port int) string {
	sb.t.Helper()
	p, err := sb.WriteBootstrap(name, fakeenvoytest.Bootstrap{Port: port, Listener: "web", Body: "hello\n", AccessLog: sb.Path("access.log")})
	if err != nil {
		sb.t.Fatal(err)
	}
	return p
}

// start runs fakeenvoy at epoch with the sandbox's base id and args.
func (sb *sandbox) start(epoch int, args ...string) *proctest.Proc {
	sb.t.Helper()
	full := append([]string{"--restart-epoch", strconv.Itoa(epoch), "--base-id", strconv.FormatUint(uint64(sb.BaseID), 10)}, args...)
	return sb.startRaw(full...)
}

// startRaw runs fakeenvoy in the sandbox's dir with exactly args.
// startedLine is fakeenvoy's own line once an epoch is fully up: LIVE,
// its parent told to drain and INITIALIZING cleared, so the next epoch may start.
const startedLine = "workers started: parent told to drain, INITIALIZING cleared"

// startRunning is start, then waits for the epoch to be fully up.
func (sb *sandbox) startRunning(epoch int, args ...string) *proctest.Proc {
	sb.t.Helper()
	p := sb.start(epoch, args...)
	p.WaitLine(startedLine, 1, wait)
	return p
}

func (sb *sandbox) startRaw(args ...string) *proctest.Proc {
	sb.t.Helper()
	return proctest.Start(sb.t, proctest.Options{Dir: sb.Dir}, sb.fakeenvoy, args...)
}

// readState waits for the state file to say the epoch is LIVE.
func readState(t *testing.T, path string, epoch uint32) server.State {
	t.Helper()
	var st server.State
	proctest.WaitFor(t, wait, "state file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("state file %s: %v", path, err)
		}
		return st.Epoch == epoch && st.State == "LIVE"
	})
	return st
}

// initializingFlag maps the sandbox's region read-only, as another
// program would, and reads INITIALIZING where Envoy keeps it.
func (sb *sandbox) initializingFlag() bool {
	sb.t.Helper()
	f, err := os.Open(envoyshm.Path(sb.BaseID))
	if err != nil {
		sb.t.Fatal(err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, envoyshm.Size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		sb.t.Fatal(err)
	}
	defer unix.Munmap(mem)
	r, err := envoyshm.NewRegion(mem)
	if err != nil {
		sb.t.Fatal(err)
	}
	if err := r.Check(envoyshm.Version); err != nil {
		sb.t.Fatal(err)
	}
	return r.Initializing()
}

// leftovers lists this sandbox's abstract domain sockets that still
// exist. The shared memory region is not one: Envoy leaves it behind.
func (sb *sandbox) leftovers() []string {
	var out []string
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		sb.t.Fatal(err)
	}
	prefix := "@envoy_domain_socket_"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[7], prefix) {
			continue
		}
		id := f[7][strings.LastIndex(f[7], "_")+1:]
		n, _ := strconv.ParseUint(id, 10, 64)
		if n/10 == uint64(sb.BaseID) {
			out = append(out, f[7])
		}
	}
	return out
}
