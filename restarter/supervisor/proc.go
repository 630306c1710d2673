package supervisor

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// This file is the OS layer: the only code that forks, signals and reaps.

// forker starts every child from one OS thread that lives as long as the
// restarter. Envoy sets PR_SET_PDEATHSIG, which the kernel ties to the
// *thread* that forked it: forking from a thread the Go runtime may later
// retire would tell Envoy its parent died (golang/go#27505).
type forker struct {
	requests chan forkRequest
}

type forkRequest struct {
	path string
	argv []string
	attr *syscall.ProcAttr
	done chan forkResult
}

type forkResult struct {
	pid int
	err error
}

func newForker() *forker {
	f := &forker{requests: make(chan forkRequest)}
	go func() {
		// Locked and never unlocked: this goroutine and its thread live until
		// the process exits.
		runtime.LockOSThread()
		for req := range f.requests {
			pid, err := syscall.ForkExec(req.path, req.argv, req.attr)
			req.done <- forkResult{pid, err}
		}
		select {} // never return, so the thread is never retired
	}()
	return f
}

// start forks and execs path with argv, env and dir. The child shares the
// restarter's stdio and is SIGKILLed if the restarter dies, so nothing
// outlives it. An exec failure is returned as an error naming path and errno,
// and that child has already been reaped by ForkExec.
func (f *forker) start(path string, argv, env []string, dir string) (int, error) {
	req := forkRequest{
		path: path,
		argv: argv,
		attr: &syscall.ProcAttr{
			Dir:   dir,
			Env:   env,
			Files: []uintptr{os.Stdin.Fd(), os.Stdout.Fd(), os.Stderr.Fd()},
			Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
		},
		done: make(chan forkResult, 1),
	}
	f.requests <- req
	res := <-req.done
	if res.err != nil {
		var errno syscall.Errno
		if errors.As(res.err, &errno) {
			return 0, fmt.Errorf("cannot execute %s: %v (errno=%d %s)", path, errno, int(errno), unix.ErrnoName(errno))
		}
		return 0, fmt.Errorf("cannot execute %s: %w", path, res.err)
	}
	return res.pid, nil
}

// reap collects every child in pids that has terminated, without blocking,
// and returns one Exited event for each. Children are reaped by pid, so
// processes the restarter did not start as epochs are left alone.
func reap(pids []int) []Event {
	var events []Event
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

// reapOrphans collects any terminated child at all. Only a subreaper calls
// it, after reap has taken the epochs', so every pid it returns is an orphan
// re-parented to the restarter.
func reapOrphans() []Event {
	var events []Event
	for {
		var status unix.WaitStatus
		pid, err := unix.Wait4(-1, &status, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return events
		}
		events = append(events, exitedEvent(pid, status))
	}
}

func exitedEvent(pid int, status unix.WaitStatus) Exited {
	if status.Signaled() {
		return Exited{PID: pid, Signal: syscall.Signal(status.Signal())}
	}
	return Exited{PID: pid, Code: status.ExitStatus()}
}

// kill sends sig to pid. ESRCH is not an error worth reporting: the child
// exited and is waiting to be reaped.
func kill(pid int, sig syscall.Signal) error {
	if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
		return fmt.Errorf("send %s to PID=%d: %w", signalName(sig), pid, err)
	}
	return nil
}

// becomeSubreaper makes orphaned descendants re-parent to this process
// (PR_SET_CHILD_SUBREAPER), as PID 1 gets them anyway.
func becomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

// checkExecutable reports whether this process may execute path.
func checkExecutable(path string) error { return unix.Access(path, unix.X_OK) }
