package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/internal/atomicfile"
	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/control"
	"github.com/envoy-restarter/restarter/restarter/internal/logging"
	"github.com/envoy-restarter/restarter/restarter/internal/memguard"
	"github.com/envoy-restarter/restarter/restarter/internal/osproc"
	"github.com/envoy-restarter/restarter/restarter/internal/watch"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// fakeOS is an operating system for the event loop, in process: children
// are pids in a table, signals are channels the test sends on, timers fire
// when the test says so. Like a kernel, it turns a child's death into a
// zombie to reap and a SIGCHLD (coalesced). Children exit 0 on SIGTERM (as
// Envoy does) unless stubborn, and die by SIGKILL.
type fakeOS struct {
	mu       sync.Mutex
	lastPID  int
	live     map[int]bool
	zombies  map[int]machine.Exited // exited, waiting to be reaped
	orphans  []machine.Exited       // exited orphans, for reapOrphans
	calls    []string               // what the loop asked for, in order
	timers   []*fakeTimer
	signals  map[syscall.Signal]chan os.Signal
	stubborn bool // children ignore SIGTERM

	// startErr, when set, fails every start; onStart runs after a start.
	startErr error
	onStart  func(pid int)
	// runHelper answers checks and readiness commands; nil runs them for
	// real, with the real OS layer's forker.
	runHelper func(ctx context.Context, cmd *exec.Cmd) (string, error)
	getenv    map[string]string
	// gate is the init gate, played by the test (with --init-gate auto).
	gate *fakeGate
	// memory is the cgroup the memory guard reads; the epochs are 100 MiB.
	memory memguard.Reading
	// watch is the config watch (--watch), played by the test.
	watch *fakeWatch
}

// fakeWatch is a config watch the test plays.
type fakeWatch struct {
	events chan watch.Event
	closed bool
}

func (w *fakeWatch) Events() <-chan watch.Event { return w.events }
func (w *fakeWatch) Close() error               { w.closed = true; return nil }

// fakeGate is an init gate the test plays: it keeps each watch's report
// function, so the test says when an epoch holds or cleared the flag.
type fakeGate struct {
	mu      sync.Mutex
	envoy   bool                        // Known: the epochs were found to be Envoy
	watches map[int]func(machine.Event) // by pid
	flagSet bool                        // what ClearInit finds
	queued  []bool                      // SetQueued calls, in order
}

func (g *fakeGate) Watch(_ context.Context, _, pid int, _ bool, report func(machine.Event)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.watches[pid] = report
}

func (g *fakeGate) ClearInit() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	was := g.flagSet
	g.flagSet = false
	return was
}

func (g *fakeGate) InitializingNow(int) bool { return false }

func (g *fakeGate) Known() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.envoy
}

func (g *fakeGate) SetQueued(queued bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := len(g.queued); n == 0 || g.queued[n-1] != queued {
		g.queued = append(g.queued, queued)
	}
}

// report hands ev to the watch of pid, as the real gate's watcher does,
// once the loop has started that watch (in a goroutine of its own).
func (g *fakeGate) report(t *testing.T, pid int, ev machine.Event) {
	t.Helper()
	var report func(machine.Event)
	require.Eventually(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		report = g.watches[pid]
		return report != nil
	}, 10*time.Second, time.Millisecond, "init watch of PID %d", pid)
	report(ev)
}

// fakeTimer is one afterFunc call.
type fakeTimer struct {
	after   time.Duration
	fn      func()
	stopped bool
}

func newFakeOS() *fakeOS {
	return &fakeOS{
		gate:    &fakeGate{watches: map[int]func(machine.Event){}},
		watch:   &fakeWatch{events: make(chan watch.Event, 1)},
		lastPID: 99,
		live:    map[int]bool{},
		zombies: map[int]machine.Exited{},
		signals: map[syscall.Signal]chan os.Signal{},
		getenv:  map[string]string{},
	}
}

func (f *fakeOS) env() osEnv {
	return osEnv{
		notifySignal: func(sig os.Signal) <-chan os.Signal {
			f.mu.Lock()
			defer f.mu.Unlock()
			ch := make(chan os.Signal, 1)
			f.signals[sig.(syscall.Signal)] = ch
			return ch
		},
		start:           f.start,
		stdout:          os.Stdout,
		stderr:          os.Stderr,
		isStream:        func(*os.File) bool { return false },
		pipe:            os.Pipe,
		kill:            f.kill,
		reap:            f.reap,
		reapOrphans:     f.reapOrphans,
		becomeSubreaper: func() error { f.record("%s", "subreaper"); return nil },
		checkOwnProc:    func() error { return nil },
		orphans:         func([]int) []int { return nil },
		groupMembers:    func(string) []int { return nil },
		checkLeftovers:  func(string, func(string)) error { return nil },
		killHelpers:     func() {},
		// Files and sockets are real, in the tests' own temp dirs.
		takePIDFile: func(path string) (pidFile, error) {
			p, err := osproc.TakePIDFile(path)
			if err != nil {
				return nil, err
			}
			return p, nil
		},
		clearBaseID:   osproc.ClearBaseID,
		readBaseID:    osproc.ReadBaseID,
		listenControl: control.Listen,
		newInitGate:   func(time.Duration) initGate { return f.gate },
		readMemory: func() (memguard.Reading, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.memory, nil
		},
		resident:  func(int) (uint64, error) { return 100 << 20, nil },
		writeFile: atomicfile.Write,
		newWatcher: func([]string, time.Duration) (watcher, error) {
			return f.watch, nil
		},
		runHelper: func(ctx context.Context, cmd *exec.Cmd) (string, error) {
			if f.runHelper != nil {
				return f.runHelper(ctx, cmd)
			}
			return testForker.RunHelper(ctx, cmd)
		},
		afterFunc: func(d time.Duration, fn func()) func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			t := &fakeTimer{after: d, fn: fn}
			f.timers = append(f.timers, t)
			return func() bool {
				f.mu.Lock()
				defer f.mu.Unlock()
				was := !t.stopped
				t.stopped = true
				return was
			}
		},
		sdNotify: func(state string) error {
			f.record("notify %s", strings.ReplaceAll(state, "\n", " "))
			return nil
		},
		monotonicUsec: func() int64 { return 1234 },
		releaseMemory: func() { f.record("%s", "release memory") },
		getpid:        func() int { return 4242 },
		environ:       func() []string { return []string{"PATH=/bin", "RESTART_EPOCH=7"} },
		getenv:        func(k string) string { return f.getenv[k] },
	}
}

func (f *fakeOS) record(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
}

// takeCalls returns the calls recorded since the last takeCalls.
func (f *fakeOS) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls := f.calls
	f.calls = nil
	return calls
}

func (f *fakeOS) start(path string, argv, env []string, dir string, _, _ *os.File) (int, error) {
	f.mu.Lock()
	if f.startErr != nil {
		f.mu.Unlock()
		return 0, f.startErr
	}
	f.lastPID++
	pid := f.lastPID
	f.live[pid] = true
	f.calls = append(f.calls, fmt.Sprintf("start %s pid=%d %s", strings.Join(argv, " "), pid, epochOf(env)))
	onStart := f.onStart
	f.mu.Unlock()
	if onStart != nil {
		onStart(pid)
	}
	return pid, nil
}

func epochOf(env []string) string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "RESTART_EPOCH=") {
			return kv
		}
	}
	return "no RESTART_EPOCH"
}

func (f *fakeOS) kill(pid int, sig syscall.Signal) error {
	f.record("kill %d %s", pid, osproc.SignalName(sig))
	switch {
	case sig == syscall.SIGKILL:
		f.exit(machine.Exited{PID: pid, Signal: machine.Signal(sig)})
	case sig == syscall.SIGTERM && !f.stubborn:
		f.exit(machine.Exited{PID: pid})
	}
	return nil
}

// exit makes a live child exit with ev's status and raises SIGCHLD.
func (f *fakeOS) exit(ev machine.Exited) {
	f.mu.Lock()
	if !f.live[ev.PID] {
		f.mu.Unlock()
		return
	}
	delete(f.live, ev.PID)
	f.zombies[ev.PID] = ev
	f.mu.Unlock()
	f.raise(syscall.SIGCHLD)
}

// raise delivers sig; like the kernel, a signal already pending coalesces.
func (f *fakeOS) raise(sig syscall.Signal) {
	f.mu.Lock()
	ch := f.signals[sig]
	f.mu.Unlock()
	select {
	case ch <- sig:
	default:
	}
}

func (f *fakeOS) reap(pids []int) []machine.Exited {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []machine.Exited
	for _, pid := range pids {
		if ev, ok := f.zombies[pid]; ok {
			delete(f.zombies, pid)
			out = append(out, ev)
		}
	}
	return out
}

func (f *fakeOS) reapOrphans() []machine.Exited {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.orphans
	f.orphans = nil
	return out
}

// fire runs the i-th timer's function, stopped or not: a stopped timer's
// firing may already be on its way, and the loop must drop it.
func (f *fakeOS) fire(i int) {
	f.mu.Lock()
	t := f.timers[i]
	f.mu.Unlock()
	t.fn()
}

// running returns how many children are alive or not yet reaped.
func (f *fakeOS) running() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live) + len(f.zombies)
}

// testConfig is a config.Config for a fake start script.
func testConfig() config.Config {
	return config.Config{Command: "./start.sh", Path: "/srv/start.sh", Args: []string{"-x"}, TermWait: testTermWait,
		CheckTimeout: 5 * time.Second, ReadyTimeout: 10 * time.Second, LogFormat: logging.Text, InitGate: config.InitGateOff, MemoryGuard: config.MemoryGuardOff}
}

// fakeRunner returns a runner over a fake OS, logging into the returned
// buffer.
func fakeRunner(t *testing.T, cfg config.Config, f *fakeOS) (*runner, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	r := newRunner(cfg, logging.New(&logs, logging.Text), f.env())
	t.Cleanup(r.cancel)
	return r, &logs
}

// startedRunner is fakeRunner set up and past its first epoch's start,
// with the calls of both taken.
func startedRunner(t *testing.T, cfg config.Config, f *fakeOS) (*runner, *syncBuffer) {
	t.Helper()
	r, logs := fakeRunner(t, cfg, f)
	_, ok := r.setUp()
	require.True(t, ok)
	handle(t, r, machine.Started{})
	f.takeCalls()
	return r, logs
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Signals as the loop turns them into events.
var (
	hup  = machine.Signaled{Signal: machine.SIGHUP}
	usr1 = machine.Signaled{Signal: machine.SIGUSR1}
	term = machine.Signaled{Signal: machine.SIGTERM}
)

// testTermWait is the configurations' --term-wait.
const testTermWait = 30 * time.Second
