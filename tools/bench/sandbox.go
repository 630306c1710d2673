package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
)

// envoyBootstrap is the bootstrap every epoch runs: an admin and one
// listener, both on a kernel-chosen loopback port so runs never collide with
// anything else on the host. --fake-reuse-port-zero hands the port-0
// listener to the next epoch by name, as Envoy does for a fixed address.
var envoyBootstrap = fakeenvoytest.Bootstrap{Listener: "bench", Body: "ok\n"}

// startScript is the operator's start script reduced to what the bench
// needs, the same for every restarter: epoch 0 picks a dynamic base id,
// later epochs read it (with the shell's builtin read, so no extra fork).
// Each epoch writes its exec timestamp and LIVE state to files of its own.
const startScript = `#!/bin/sh
d=%[1]s
if [ "$RESTART_EPOCH" -eq 0 ]; then
	set -- --use-dynamic-base-id --base-id-path "$d/base-id"
else
	read -r base < "$d/base-id"
	set -- --base-id "$base"
fi
if [ -e "$d/ready-delay" ]; then
	read -r delay < "$d/ready-delay"
	set -- "$@" --fake-ready-delay "$delay"
fi
exec %[2]s --restart-epoch "$RESTART_EPOCH" -c "$d/envoy.yaml" \
	--fake-drain-time %[3]s --fake-parent-shutdown-time %[4]s --fake-reuse-port-zero \
	--fake-exec-timestamp-path "$d/exec.$RESTART_EPOCH" \
	--fake-state-path "$d/state.$RESTART_EPOCH" "$@"
`

// Restarter is one restarter command line under measurement.
type Restarter struct {
	Label string   // the column name in the report
	Argv  []string // the start script is appended
	Env   []string // added to the bench's environment
	This  bool     // this project's restarter
}

// instance is one restarter running in its own sandbox (fakeenvoytest's
// sandbox in a temp dir, a process group, a dynamic base id) with fakeenvoy
// as its child.
type instance struct {
	label    string
	sandbox  *fakeenvoytest.Sandbox
	cmd      *exec.Cmd
	pid      int
	watch    *watcher
	exited   chan struct{}
	exitNano int64 // CLOCK_MONOTONIC when Wait returned
	state    *os.ProcessState
}

// registry remembers every sandbox still open, so that an error, a panic
// or Ctrl-C can remove them all.
// keepSandboxes keeps every sandbox directory (--keep), for reading logs.
var keepSandboxes bool

var registry = struct {
	sync.Mutex
	open map[*instance]bool
	// removeRegions removes the shared memory regions every sandbox's
	// fakeenvoy made (fakeenvoytest.LogRegions); set by run.
	removeRegions func()
}{open: map[*instance]bool{}}

// launch starts r in a fresh sandbox and waits for epoch 0 to be LIVE.
func (b *bench) launch(r Restarter) (*instance, error) {
	dir, err := os.MkdirTemp("", "restarter-bench-")
	if err != nil {
		return nil, err
	}
	in := &instance{label: r.Label, sandbox: fakeenvoytest.OpenSandbox(dir), exited: make(chan struct{})}
	registry.Lock()
	registry.open[in] = true
	registry.Unlock()
	fail := func(err error) (*instance, error) {
		in.close()
		return nil, fmt.Errorf("%s: %w (logs in %s were removed; rerun with --keep to keep them)", r.Label, err, dir)
	}
	if b.keep {
		fail = func(err error) (*instance, error) {
			in.stop()
			return nil, fmt.Errorf("%s: %w (see %s/restarter.log)", r.Label, err, dir)
		}
	}
	script := in.sandbox.Path("start.sh")
	if _, err := in.sandbox.WriteBootstrap("envoy.yaml", envoyBootstrap); err != nil {
		return fail(err)
	}
	text := fmt.Sprintf(startScript, shellQuote(dir), shellQuote(b.fakeenvoy),
		b.drainTime, b.parentShutdownTime)
	if err := os.WriteFile(script, []byte(text), 0o755); err != nil {
		return fail(err)
	}
	if in.watch, err = newWatcher(dir); err != nil {
		return fail(err)
	}
	logFile, err := os.Create(in.sandbox.Path("restarter.log"))
	if err != nil {
		return fail(err)
	}
	defer logFile.Close()
	argv := append(append([]string(nil), r.Argv...), script)
	in.cmd = exec.Command(argv[0], argv[1:]...)
	in.cmd.Dir = dir
	in.cmd.Env = append(os.Environ(), r.Env...)
	in.cmd.Stdout, in.cmd.Stderr = logFile, logFile
	// Its own process group, so cleanup reaches every epoch; KILLed if the
	// bench itself is killed.
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := in.cmd.Start(); err != nil {
		return fail(err)
	}
	in.pid = in.cmd.Process.Pid
	go func() {
		_ = in.cmd.Wait()
		in.exitNano = monotonicNow()
		in.state = in.cmd.ProcessState
		close(in.exited)
	}()
	if _, err := in.waitLive(0); err != nil {
		return fail(err)
	}
	return in, nil
}

// execNanos is the CLOCK_MONOTONIC time at which epoch's fakeenvoy entered
// main, as it wrote it.
func (in *instance) execNanos(epoch int) (int64, error) {
	name := "exec." + strconv.Itoa(epoch)
	if _, err := in.watch.wait(name, 10*time.Second, in.exited); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(in.sandbox.Path(name))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// waitLive waits for epoch to write its LIVE state and returns when the
// bench saw it (CLOCK_MONOTONIC).
func (in *instance) waitLive(epoch int) (int64, error) {
	return in.watch.wait("state."+strconv.Itoa(epoch), 10*time.Second, in.exited)
}

// listenerAddress is the bench listener's host:port, from epoch 0's state.
func (in *instance) listenerAddress() (string, error) {
	b, err := os.ReadFile(in.sandbox.Path("state.0"))
	if err != nil {
		return "", err
	}
	var st struct {
		Listeners map[string]string `json:"listeners"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return "", err
	}
	if st.Listeners["bench"] == "" {
		return "", errors.New("state.0 names no listener")
	}
	return st.Listeners["bench"], nil
}

func (in *instance) signal(sig syscall.Signal) error { return unix.Kill(in.pid, sig) }

// waitExit waits up to d for the restarter to exit.
func (in *instance) waitExit(d time.Duration) bool {
	select {
	case <-in.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// stop KILLs whatever is left of the sandbox's processes and reaps them.
func (in *instance) stop() {
	if in.cmd != nil && in.cmd.Process != nil {
		if len(inGroup(in.pid)) > 0 {
			_ = unix.Kill(-in.pid, unix.SIGKILL)
		}
		<-in.exited
		reapOrphans(in.pid)
	}
	if in.watch != nil {
		in.watch.close()
	}
}

// close stops the sandbox and removes its directory; run removes the
// shared memory regions of every sandbox at the end (LogRegions).
func (in *instance) close() {
	in.stop()
	if !keepSandboxes {
		_ = os.RemoveAll(in.sandbox.Dir)
	}
	registry.Lock()
	delete(registry.open, in)
	registry.Unlock()
}

// closeAll closes every open sandbox; the bench's exit paths call it.
func closeAll() {
	registry.Lock()
	open := make([]*instance, 0, len(registry.open))
	for in := range registry.open {
		open = append(open, in)
	}
	removeRegions := registry.removeRegions
	registry.Unlock()
	for _, in := range open {
		in.close()
	}
	if removeRegions != nil {
		removeRegions()
	}
}

// reapOrphans KILLs and reaps processes of group pgid that were orphaned
// and handed to the bench (a child subreaper): a restarter that exits
// without reaping leaves them to us.
func reapOrphans(pgid int) {
	self := os.Getpid()
	for _, p := range inGroup(pgid) {
		if p.PPID != self {
			_ = unix.Kill(p.PID, unix.SIGKILL)
			continue
		}
		_ = unix.Kill(p.PID, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(p.PID, &ws, 0, nil)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// watcher reports when files appear in a directory (fakeenvoy writes them
// by rename), timestamped on arrival with CLOCK_MONOTONIC.
type watcher struct {
	f       *os.File
	mu      sync.Mutex
	seen    map[string]int64
	changed chan struct{} // closed and replaced on every event
}

func newWatcher(dir string) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	w := &watcher{f: os.NewFile(uintptr(fd), "inotify"), seen: map[string]int64{}, changed: make(chan struct{})}
	go w.loop()
	return w, nil
}

func (w *watcher) loop() {
	buf := make([]byte, 64*1024)
	for {
		n, err := w.f.Read(buf)
		now := monotonicNow()
		if err != nil {
			return
		}
		w.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen], "\x00"))
			if _, ok := w.seen[name]; !ok {
				w.seen[name] = now
			}
			off += unix.SizeofInotifyEvent + nameLen
		}
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}
}

// wait returns when name appeared, or an error after timeout or once
// abort is closed.
func (w *watcher) wait(name string, timeout time.Duration, abort <-chan struct{}) (int64, error) {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		t, ok := w.seen[name]
		changed := w.changed
		w.mu.Unlock()
		if ok {
			return t, nil
		}
		select {
		case <-changed:
		case <-deadline:
			return 0, fmt.Errorf("no %s after %v", name, timeout)
		case <-abort:
			// A last look: the file may have come just before the exit.
			w.mu.Lock()
			t, ok := w.seen[name]
			w.mu.Unlock()
			if ok {
				return t, nil
			}
			return 0, fmt.Errorf("the restarter exited before %s appeared", name)
		}
	}
}

func (w *watcher) close() { _ = w.f.Close() }
