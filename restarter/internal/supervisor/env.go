package supervisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/envoy-restarter/restarter/internal/atomicfile"
	"github.com/envoy-restarter/restarter/internal/httpprobe"
	"github.com/envoy-restarter/restarter/internal/procfs"
	"github.com/envoy-restarter/restarter/restarter/internal/control"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
	"github.com/envoy-restarter/restarter/restarter/internal/memguard"
	"github.com/envoy-restarter/restarter/restarter/internal/osproc"
	"github.com/envoy-restarter/restarter/restarter/internal/watch"
)

// osEnv is everything the event loop asks of the operating system, gathered
// in one struct of functions so that tests can run the loop in process
// against a fake, entirely: nothing else in this package forks, signals,
// reaps, opens a file, listens, notifies, maps Envoy's region or arms a
// timer. Production uses newOSEnv, over restarter/internal/osproc.
type osEnv struct {
	// notifySignal returns a channel that receives sig from now on, with room
	// for one: a burst of one signal coalesces, as the kernel does, without
	// crowding out the others. The handler is never removed.
	notifySignal func(sig os.Signal) <-chan os.Signal

	// start forks and execs an epoch: path with argv, env and dir, sharing the
	// restarter's stdio. An exec failure is an error naming path and errno.
	start func(path string, argv, env []string, dir string, stdout, stderr *os.File) (pid int, err error)
	// stdout and stderr are the restarter's own; isStream says whether one
	// is a pipe, a FIFO or a socket; pipe makes a pipe (the log relay).
	stdout, stderr *os.File
	isStream       func(f *os.File) bool
	pipe           func() (r, w *os.File, err error)
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
	// checkOwnProc fails when /proc is another pid namespace's.
	checkOwnProc func() error
	// orphans lists the live children that are neither in epochs nor
	// helpers: processes adopted as subreaper.
	orphans func(epochs []int) []int
	// groupMembers lists the live processes of the restarter's process
	// group, itself aside, whose environment carries restarter instance id:
	// the epochs and what their start scripts left running.
	groupMembers func(id string) []int
	// checkLeftovers fails while Envoy processes an earlier run of instance
	// id left are still running (after waiting a little for them), and warns
	// about the other leftovers.
	checkLeftovers func(id string, warn func(string)) error

	// runHelper runs a check or readiness command to completion or until ctx
	// is done, and returns the tail of its combined output.
	runHelper func(ctx context.Context, cmd *exec.Cmd) (string, error)
	// killHelpers kills every helper still running, with its process group.
	killHelpers func()

	// takePIDFile takes --pid-file (written later, released at exit).
	takePIDFile func(path string) (pidFile, error)
	// clearBaseID removes a stale --base-id-path file; readBaseID reads the
	// one epoch 0 wrote.
	clearBaseID func(path string) error
	readBaseID  func(path string) (osproc.BaseID, error)
	// listenControl serves the control socket at path.
	listenControl func(path string, warn func(string)) (*control.Server, error)
	// newInitGate returns the init gate: Envoy's INITIALIZING flag, found in
	// the epochs' shared memory region. An epoch not found mapping it within
	// discoverFor is not Envoy.
	newInitGate func(discoverFor time.Duration) initGate

	// readMemory reads the restarter's cgroup memory limit and usage;
	// resident is pid's resident memory in bytes (the memory guard).
	readMemory func() (memguard.Reading, error)
	resident   func(pid int) (uint64, error)
	// writeFile replaces the file at path with data atomically (the
	// metrics file).
	writeFile func(path string, data []byte) error
	// admin is Envoy's admin, for the drain before a stop.
	admin adminClient
	// newWatcher watches files for content changes (--watch).
	newWatcher func(paths []string, debounce time.Duration) (watcher, error)

	// afterFunc calls f in its own goroutine after d; stop cancels the call
	// unless it already started.
	afterFunc func(d time.Duration, f func()) (stop func() bool)

	// sdNotify sends state to the service manager ($NOTIFY_SOCKET).
	sdNotify func(state string) error
	// releaseMemory collects garbage and returns free memory to the kernel.
	releaseMemory func()
	// monotonicUsec is CLOCK_MONOTONIC in microseconds (sd_notify's
	// MONOTONIC_USEC).
	monotonicUsec func() int64

	getpid  func() int
	environ func() []string
	getenv  func(key string) string
}

// pidFile is a --pid-file taken (osproc.PIDFile).
type pidFile interface {
	Write(pid int) error
	Release(pid int)
}

// initGate watches Envoy's INITIALIZING flag (osproc.InitGate).
type initGate interface {
	// Watch reports, for epoch (process pid), InitStarted when it is seen
	// holding the flag (unless gated: held as initializing from its fork)
	// and InitDone once it cleared it, or once it is found not to be Envoy.
	Watch(ctx context.Context, epoch, pid int, gated bool, report func(machine.Event))
	// ClearInit clears a flag a dead epoch left set; true if it was set.
	ClearInit() bool
	// InitializingNow reports whether pid, whose watcher has not told yet,
	// holds the flag now.
	InitializingNow(pid int) bool
	// Known reports whether the epochs were found to be Envoy.
	Known() bool
	// SetQueued says whether a hot restart waits for the flag to clear: the
	// watchers look fast then.
	SetQueued(queued bool)
}

// adminClient is what the drain asks Envoy's admin at base (httpprobe).
type adminClient struct {
	failHealthcheck  func(ctx context.Context, base string) error
	drainListeners   func(ctx context.Context, base string) error
	totalConnections func(ctx context.Context, base string) (int, error)
}

// watcher reports content changes of watched files (watch.Watcher).
type watcher interface {
	Events() <-chan watch.Event
	Close() error
}

// newOSEnv returns the real operating system, as the event loop uses it.
func newOSEnv() osEnv {
	f := osproc.NewForker()
	return osEnv{
		notifySignal: func(sig os.Signal) <-chan os.Signal {
			ch := make(chan os.Signal, 1)
			signal.Notify(ch, sig)
			return ch
		},
		start:           f.Start,
		stdout:          os.Stdout,
		stderr:          os.Stderr,
		isStream:        osproc.IsStream,
		pipe:            os.Pipe,
		kill:            osproc.Kill,
		reap:            osproc.Reap,
		reapOrphans:     f.ReapOrphans,
		becomeSubreaper: osproc.BecomeSubreaper,
		checkOwnProc:    procfs.CheckOwn,
		orphans:         f.Orphans,
		groupMembers:    osproc.GroupMembers,
		checkLeftovers: func(id string, warn func(string)) error {
			return osproc.CheckLeftovers(osproc.FindLeftovers, id, warn)
		},
		runHelper:   f.RunHelper,
		killHelpers: f.KillHelpers,
		takePIDFile: func(path string) (pidFile, error) {
			p, err := osproc.TakePIDFile(path)
			if err != nil {
				return nil, err // not a nil *PIDFile in a non-nil interface
			}
			return p, nil
		},
		clearBaseID:   osproc.ClearBaseID,
		readBaseID:    osproc.ReadBaseID,
		listenControl: control.Listen,
		newInitGate:   func(d time.Duration) initGate { return osproc.NewInitGate(d) },
		readMemory:    func() (memguard.Reading, error) { return memguard.Read("/") },
		admin: adminClient{
			failHealthcheck:  httpprobe.FailHealthcheck,
			drainListeners:   httpprobe.DrainListeners,
			totalConnections: httpprobe.ActiveConnections,
		},
		resident: func(pid int) (uint64, error) {
			rss, _, err := procfs.Memory(pid)
			return uint64(rss) << 10, err
		},
		writeFile: func(path string, data []byte) error {
			if err := atomicfile.Write(path, data); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
			return nil
		},
		newWatcher: func(paths []string, debounce time.Duration) (watcher, error) {
			w, err := watch.New(paths, debounce)
			if err != nil {
				return nil, err
			}
			return w, nil
		},
		afterFunc: func(d time.Duration, fn func()) func() bool {
			return time.AfterFunc(d, fn).Stop
		},
		sdNotify:      func(state string) error { _, err := daemon.SdNotify(false, state); return err },
		monotonicUsec: osproc.MonotonicUsec,
		releaseMemory: debug.FreeOSMemory,
		getpid:        os.Getpid,
		environ:       os.Environ,
		getenv:        os.Getenv,
	}
}
