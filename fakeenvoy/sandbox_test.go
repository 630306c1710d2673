package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/hotrestart"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/server"
)

// binary is fakeenvoy, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fakeenvoy-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fakeenvoy")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build fakeenvoy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const waitLimit = 15 * time.Second

// sandbox is one scenario's private world: a temp dir, a base id of its
// own (so its domain sockets and shared memory collide with nobody's) and
// kernel-chosen loopback ports.
type sandbox struct {
	t      *testing.T
	dir    string
	baseID uint32
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	t.Parallel()
	sb := &sandbox{t: t, dir: t.TempDir(), baseID: 200_000_000 + rand.Uint32N(60_000_000)}
	t.Cleanup(func() { _ = os.Remove("/dev/shm" + hotrestart.SharedMemoryName(sb.baseID)) })
	return sb
}

func (sb *sandbox) path(name string) string { return filepath.Join(sb.dir, name) }

// config writes a bootstrap with one listener on port (0: kernel's choice)
// logging to access.log, and an admin on a kernel-chosen port.
func (sb *sandbox) config(name string, port int) string {
	sb.t.Helper()
	doc := fmt.Sprintf(`admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: %s
          route_config:
            virtual_hosts:
            - name: web
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_string: "hello\n"}}
`, port, sb.path("access.log"))
	p := sb.path(name)
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		sb.t.Fatal(err)
	}
	return p
}

// proc is one fakeenvoy process; it is killed and reaped when the test ends.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *logBuffer
	done   chan struct{}
	state  *os.ProcessState
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs fakeenvoy at epoch with the sandbox's base id and args.
func (sb *sandbox) start(epoch int, args ...string) *proc {
	sb.t.Helper()
	full := append([]string{"--restart-epoch", strconv.Itoa(epoch), "--base-id", strconv.FormatUint(uint64(sb.baseID), 10)}, args...)
	return sb.startRaw(full...)
}

func (sb *sandbox) startRaw(args ...string) *proc {
	sb.t.Helper()
	p := &proc{t: sb.t, cmd: exec.Command(binary, args...), stderr: &logBuffer{}, done: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	p.cmd.Dir = sb.dir
	if err := p.cmd.Start(); err != nil {
		sb.t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.done)
	}()
	sb.t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if sb.t.Failed() {
			sb.t.Logf("pid %d stderr:\n%s", p.cmd.Process.Pid, p.stderr.String())
		}
	})
	return p
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *proc) waitLog(substr string) {
	p.t.Helper()
	waitFor(p.t, fmt.Sprintf("log line %q from pid %d; stderr so far:\n%s", substr, p.cmd.Process.Pid, p.stderr.String()),
		func() bool { return strings.Contains(p.stderr.String(), substr) })
}

// exit waits for the process and returns its exit code, or -signal.
func (p *proc) exit() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitLimit):
		p.t.Fatalf("pid %d did not exit; stderr:\n%s", p.cmd.Process.Pid, p.stderr.String())
	}
	ws := p.state.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return -int(ws.Signal())
	}
	return ws.ExitStatus()
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// readState waits for the state file to say the epoch is LIVE.
func readState(t *testing.T, path string, epoch uint32) server.State {
	t.Helper()
	var st server.State
	waitFor(t, "state file "+path, func() bool {
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

// leftovers lists this sandbox's shared memory region and abstract domain
// sockets that still exist.
func (sb *sandbox) leftovers() []string {
	var out []string
	if hotrestart.RegionExists(sb.baseID) {
		out = append(out, hotrestart.SharedMemoryName(sb.baseID))
	}
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
		if n/10 == uint64(sb.baseID) {
			out = append(out, f[7])
		}
	}
	return out
}

func exitCodeOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
