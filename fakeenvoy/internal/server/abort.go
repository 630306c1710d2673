package server

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// abort ends the process the way Envoy's PANIC and RELEASE_ASSERT do: by
// SIGABRT, so a supervisor sees "killed by signal 6", not an exit code.
// Go's runtime handles SIGABRT itself (goroutine dump, exit 2), so the
// default action is restored first. Core dumps are switched off so tests
// leave nothing behind.
func abort() {
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	// struct kernel_sigaction {handler, flags, restorer, mask}; all zero is SIG_DFL.
	var action [4]uint64
	_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGABRT),
		uintptr(unsafe.Pointer(&action)), 0, 8, 0, 0)
	_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), unix.SIGABRT)
	os.Exit(134)
}

// setParentDeathSignal asks for SIGTERM when the parent dies, as Envoy
// does. It must run on the main thread (see main.go's LockOSThread).
func setParentDeathSignal() error {
	return unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0)
}
