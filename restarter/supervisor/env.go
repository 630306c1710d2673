package supervisor

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// osEnv is everything the event loop asks of the operating system, gathered
// in one struct of functions so that tests can run the loop in process
// against a fake. Production uses newOSEnv (proc.go), the only code that
// calls unix.*; nothing else in the runner forks, signals, reaps, notifies
// or arms a timer.
type osEnv struct {
	// notifySignal returns a channel that receives sig from now on, with room
	// for one: a burst of one signal coalesces, as the kernel does, without
	// crowding out the others. The handler is never removed.
	notifySignal func(sig os.Signal) <-chan os.Signal

	// start forks and execs an epoch: path with argv, env and dir, sharing the
	// restarter's stdio. An exec failure is an error naming path and errno.
	start func(path string, argv, env []string, dir string) (pid int, err error)
	// kill sends sig to pid; a child that exited and waits to be reaped is not
	// an error.
	kill func(pid int, sig syscall.Signal) error
	// reap collects, without blocking, every child in pids that terminated.
	reap func(pids []int) []machine.Exited
	// reapOrphans collects terminated children that are neither epochs nor
	// helpers (subreaper only; called after reap).
	reapOrphans func() []machine.Exited
	// becomeSubreaper makes orphaned descendants re-parent to the restarter.
	becomeSubreaper func() error
	// orphans lists the live children that are neither in epochs nor
	// helpers: processes adopted as subreaper.
	orphans func(epochs []int) []int
	// groupMembers lists the live processes of the restarter's process
	// group, itself aside, whose environment carries restarter instance id:
	// the epochs and what their start scripts left running (leftovers.go).
	groupMembers func(id string) []int
	// leftovers lists the processes an earlier run of restarter instance id
	// left running (see leftovers.go).
	leftovers func(id string) []leftover

	// runHelper runs a check or readiness command to completion or until ctx
	// is done, and returns the tail of its combined output.
	runHelper func(ctx context.Context, cmd *exec.Cmd) (string, error)
	// killHelpers kills every helper still running, with its process group.
	killHelpers func()

	// afterFunc calls f in its own goroutine after d; stop cancels the call
	// unless it already started.
	afterFunc func(d time.Duration, f func()) (stop func() bool)

	// sdNotify sends state to the service manager ($NOTIFY_SOCKET).
	sdNotify func(state string) error
	// releaseMemory collects garbage and returns free memory to the kernel;
	// it is safe to call from any goroutine.
	releaseMemory func()
	// monotonicUsec is CLOCK_MONOTONIC in microseconds (sd_notify's
	// MONOTONIC_USEC).
	monotonicUsec func() int64

	getpid  func() int
	environ func() []string
	getenv  func(key string) string
}
