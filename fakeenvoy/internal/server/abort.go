package server

import (
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/envoylog"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/sigdefault"
)

// abort ends the process the way Envoy's PANIC and RELEASE_ASSERT do: by
// SIGABRT, so a supervisor sees "killed by signal 6", not an exit code.
func abort() { dieBySignal(unix.SIGABRT) }

// dieBySignal ends the process by sig with its default action. Go's runtime
// handles SIGABRT, SIGSEGV and friends itself (goroutine dump, exit 2), so
// the default action is restored first. Core dumps are switched off so
// tests leave nothing behind.
func dieBySignal(sig unix.Signal) {
	// Stay on this OS thread: the signal is sent to it, and is delivered as
	// the tgkill returns; a goroutine moved to another thread in between
	// would reach os.Exit first and end with a code instead of the signal.
	runtime.LockOSThread()
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	sigdefault.Set(sig)
	_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
	os.Exit(128 + int(sig))
}

// fatalSignals are the signals Envoy's SignalAction catches to print a
// backtrace before dying by the same signal.
var fatalSignals = map[os.Signal]string{
	syscall.SIGSEGV: "Segmentation fault",
	syscall.SIGBUS:  "Bus error",
	syscall.SIGILL:  "Illegal instruction",
	syscall.SIGFPE:  "Floating point exception",
	syscall.SIGABRT: "Aborted",
}

// handleFatalSignals does what Envoy's fatal signal handler does when such
// a signal arrives (sent by kill: Go only turns ones raised by a faulting
// instruction into a panic): log it, then die by it, so the supervisor
// sees "killed by signal 11" rather than Go's exit code 2.
func handleFatalSignals(log *envoylog.Logger) {
	ch := make(chan os.Signal, 1)
	for sig := range fatalSignals {
		signal.Notify(ch, sig)
	}
	go func() {
		sig := <-ch
		log.Critical("backtrace", "Caught %s, suspect faulting address 0x0", fatalSignals[sig])
		log.Critical("backtrace", "Backtrace (use tools/stack_decode.py to get line numbers):")
		log.Critical("backtrace", "Envoy version: fakeenvoy")
		dieBySignal(sig.(syscall.Signal))
	}()
}

// setParentDeathSignal asks for SIGTERM when the parent dies, as Envoy
// does. It must run on the main thread (see main.go's LockOSThread).
func setParentDeathSignal() error {
	return unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0)
}
