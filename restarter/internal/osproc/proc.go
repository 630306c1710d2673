// Package osproc is the restarter's OS layer: it forks and execs the epochs
// from one locked thread, reaps them, signals them, runs helpers in process
// groups of their own, takes the pid file and clears the base id file,
// finds the processes an earlier run left, and watches Envoy's INITIALIZING
// flag in its shared memory region (the init gate). The event loop
// (restarter/internal/supervisor) reaches it only through its OS interface.
package osproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/envoy-restarter/restarter/internal/procfs"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"

	"golang.org/x/sys/unix"
)

// This file forks, signals and reaps.

// Forker starts every child from one OS thread that lives as long as the
// restarter. Envoy sets PR_SET_PDEATHSIG, which the kernel ties to the
// *thread* that forked it: forking from a thread the Go runtime may later
// retire would tell Envoy its parent died (golang/go#27505).
//
// Helper processes (the check, the readiness command) are forked there too,
// and their pids are kept in helpers so that a subreaper's orphan reaping
// leaves them to os/exec.
type Forker struct {
	requests chan func()

	mu      sync.Mutex
	helpers map[int]bool
}

func NewForker() *Forker {
	f := &Forker{requests: make(chan func()), helpers: map[int]bool{}}
	go func() {
		// Locked and never unlocked: this goroutine and its thread live until
		// the process exits.
		runtime.LockOSThread()
		for fn := range f.requests {
			fn()
		}
		select {} // never return, so the thread is never retired
	}()
	return f
}

// do runs fn on the forking thread and returns when it has run.
func (f *Forker) do(fn func()) {
	done := make(chan struct{})
	f.requests <- func() { fn(); close(done) }
	<-done
}

// helperOutputWait bounds how long a helper's output is read after its
// process group was killed: only a process that left the group can still
// hold it open.
const helperOutputWait = time.Second

// errOutputHeld reports a helper that exited 0 while a process it started
// in a session of its own still holds its output open.
var errOutputHeld = errors.New("exited 0, but a process it started outside its process group still holds its output open")

// runHelper runs cmd (forked from the forking thread, with Pdeathsig) in a
// process group of its own to completion or until ctx is done, and returns
// its combined output, at most the last maxOutput bytes. Whatever the
// helper leaves running in its group is killed with it: on completion, on
// ctx's end and at shutdown (killHelpers).
func (f *Forker) RunHelper(ctx context.Context, cmd *exec.Cmd) (string, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", err
	}
	// The output goes through a pipe of our own, not os/exec's copying, so
	// that the wait ends with the helper's process, not with its output.
	var out tailBuffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&out, pr)
		close(copied)
	}()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	f.do(func() {
		// The lock is held across the fork: a helper that exits at once is
		// never taken for an orphan (ReapOrphans would steal its status
		// from os/exec) between its fork and its registration.
		f.mu.Lock()
		defer f.mu.Unlock()
		if err = cmd.Start(); err == nil {
			f.helpers[cmd.Process.Pid] = true
		}
	})
	pw.Close()
	if err != nil {
		pr.Close()
		<-copied
		return "", err
	}
	pgid := cmd.Process.Pid
	stop := context.AfterFunc(ctx, func() { killGroup(pgid) })
	err = cmd.Wait()
	stop()
	killGroup(pgid) // what the helper left behind, such as a background sleep
	held := false
	select {
	case <-copied:
	case <-time.After(helperOutputWait):
		held = true
		pr.Close()
		<-copied
	}
	f.mu.Lock()
	delete(f.helpers, pgid)
	f.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		return out.String(), ctx.Err()
	case err == nil && held:
		return out.String(), errOutputHeld
	}
	return out.String(), err
}

// killHelpers SIGKILLs the process group of every helper still running: at
// shutdown, nothing a check or probe started may outlive the restarter.
func (f *Forker) KillHelpers() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for pgid := range f.helpers {
		killGroup(pgid)
	}
}

// killGroup SIGKILLs process group pgid; an empty group is no error.
func killGroup(pgid int) { unix.Kill(-pgid, unix.SIGKILL) }

func (f *Forker) IsHelper(pid int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.helpers[pid]
}

// maxOutput is how much of a helper's output is kept: enough for an error
// message, bounded whatever the helper prints.
const maxOutput = 8 << 10

// tailBuffer keeps the last maxOutput bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > maxOutput {
		b.buf = b.buf[len(b.buf)-maxOutput:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// Start forks and execs path with argv, env and dir. The child shares the
// restarter's stdin and process group (what its start script leaves in the
// background stays there, and is stopped at exit), writes to stdout and
// stderr (the restarter's own when nil; the log relay's pipes otherwise),
// and is SIGKILLed if the restarter dies. An exec failure is returned as an
// error naming path and errno, and that child has already been reaped by
// ForkExec.
func (f *Forker) Start(path string, argv, env []string, dir string, stdout, stderr *os.File) (int, error) {
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{os.Stdin.Fd(), stdout.Fd(), stderr.Fd()},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	var pid int
	var err error
	f.do(func() { pid, err = syscall.ForkExec(path, argv, attr) })
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			if errno == unix.ENOENT {
				if interp, ok := missingInterpreter(path, dir); ok {
					return 0, fmt.Errorf("cannot execute %s: its interpreter %s (on its #! line) does not exist (errno=2 ENOENT)", path, interp)
				}
			}
			return 0, fmt.Errorf("cannot execute %s: %v (errno=%d %s)", path, errno, int(errno), unix.ErrnoName(errno))
		}
		return 0, fmt.Errorf("cannot execute %s: %w", path, err)
	}
	return pid, nil
}

// missingInterpreter reports the interpreter named on the #! line of the
// script at path (relative to dir), when the script exists and that
// interpreter does not: the ENOENT that execve gives then is about it.
func missingInterpreter(path, dir string) (string, bool) {
	if !filepath.IsAbs(path) && dir != "" {
		path = filepath.Join(dir, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	head := make([]byte, 256)
	n, _ := io.ReadFull(f, head)
	line, _, _ := strings.Cut(string(head[:n]), "\n")
	rest, ok := strings.CutPrefix(line, "#!")
	fields := strings.Fields(rest)
	if !ok || len(fields) == 0 {
		return "", false
	}
	if _, err := os.Stat(fields[0]); !errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	return fields[0], true
}

// Reap collects every child in pids that has terminated, without blocking,
// and returns one Exited event for each. Children are reaped by pid, so
// processes the restarter did not start as epochs are left alone.
func Reap(pids []int) []machine.Exited {
	var events []machine.Exited
	for _, pid := range pids {
		var status unix.WaitStatus
		for {
			got, err := unix.Wait4(pid, &status, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || got != pid {
				break // still running (got == 0), or not our child (ECHILD)
			}
			events = append(events, exitedEvent(pid, status))
			break
		}
	}
	return events
}

// reapOrphans collects terminated children that are neither epochs nor
// helpers. Only a subreaper calls it, after Reap has taken the epochs', so
// every pid it returns is an orphan re-parented to the restarter. It peeks
// (WNOWAIT) first: a helper's status belongs to os/exec, and the pass stops
// there until the helper has been waited for (its end triggers a new pass).
func (f *Forker) ReapOrphans() []machine.Exited {
	var events []machine.Exited
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		pid := int(siginfoPID(&info))
		if err != nil || pid <= 0 || f.IsHelper(pid) {
			return events
		}
		var status unix.WaitStatus
		if got, err := unix.Wait4(pid, &status, unix.WNOHANG, nil); err != nil || got != pid {
			return events
		}
		events = append(events, exitedEvent(pid, status))
	}
}

// orphans returns the pids of this process's live children that are
// neither in epochs nor helpers: processes adopted as subreaper. It reads
// /proc, as no system call lists a process's children.
func (f *Forker) Orphans(epochs []int) []int {
	pids, err := ownPIDs()
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, pid := range pids {
		if pid == self || slices.Contains(epochs, pid) || f.IsHelper(pid) {
			continue
		}
		if st, err := procfs.ReadStat(pid); err == nil && st.Running() && st.PPID == self {
			out = append(out, pid)
		}
	}
	return out
}

// siginfoPID returns si_pid of a SIGCHLD siginfo. x/sys leaves the union
// unnamed; in Linux's ABI si_pid is the int32 after si_signo, si_errno,
// si_code and 4 bytes of padding on 64-bit (no padding on 32-bit).
func siginfoPID(info *unix.Siginfo) int32 {
	offset := uintptr(12)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		offset = 16
	}
	return *(*int32)(unsafe.Add(unsafe.Pointer(info), offset))
}

func exitedEvent(pid int, status unix.WaitStatus) machine.Exited {
	if status.Signaled() {
		return machine.Exited{PID: pid, Signal: machine.Signal(status.Signal())}
	}
	return machine.Exited{PID: pid, Code: status.ExitStatus()}
}

// SignalName returns the conventional name of sig, such as SIGHUP.
func SignalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// Kill sends sig to pid. ESRCH is not an error worth reporting: the child
// exited and is waiting to be reaped.
func Kill(pid int, sig syscall.Signal) error {
	if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
		return fmt.Errorf("send %s to PID=%d: %w", SignalName(sig), pid, err)
	}
	return nil
}

// BecomeSubreaper makes orphaned descendants re-parent to this process
// (PR_SET_CHILD_SUBREAPER), as PID 1 gets them anyway.
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

// MonotonicUsec returns CLOCK_MONOTONIC in microseconds, as sd_notify's
// MONOTONIC_USEC wants it.
func MonotonicUsec() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() / 1000
}

// lockFile takes an exclusive flock on f without waiting.
func lockFile(f *os.File) error {
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
}

// IsStream reports whether f is a pipe, a FIFO or a socket: an output whose
// reader can stall (journald's stream, runit's log service).
func IsStream(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0
}
