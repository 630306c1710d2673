// Package sigdefault gives the signals Envoy's RunHelper handles (SIGTERM,
// SIGINT, SIGUSR1, SIGHUP) their default action from the start of the
// process, as an Envoy has them until RunHelper installs its handlers
// (source/server/server.cc, InstanceImpl::run): a signal that arrives while
// the config loads kills the process by that signal.
//
// Go's runtime would not: it installs its own handler for every signal
// before any Go code runs, and without signal.Notify it swallows SIGUSR1.
// This package's init puts the default action back as early as Go allows:
// right after os/signal's init, about a millisecond after exec (the
// runtime's start and the packages initialised before it), a window where
// SIGUSR1 is still swallowed. The server catches the signals with
// signal.Notify at the point of RunHelper, and calls Restore when RunHelper
// would be destroyed.
package sigdefault

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"
)

// Handled are the signals Envoy's RunHelper handles, in its order.
var Handled = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGHUP}

// inheritedIgnored are the signals of Handled the process was started with
// ignored. exec keeps an ignored signal ignored, and Envoy leaves it so until
// RunHelper; Go's runtime keeps it only for SIGHUP and SIGINT and can tell
// only those apart (signal.Ignored), so a SIGTERM or SIGUSR1 inherited
// ignored gets the default action here.
var inheritedIgnored = map[os.Signal]bool{}

func init() {
	for _, sig := range Handled {
		inheritedIgnored[sig] = signal.Ignored(sig)
	}
	Restore()
}

// InheritedIgnored reports whether the process was started with sig, one
// of Handled, ignored (as far as Go can tell: SIGHUP and SIGINT only); it
// then stays ignored until the handlers are installed, as in Envoy.
func InheritedIgnored(sig os.Signal) bool { return inheritedIgnored[sig] }

// Restore gives each of Handled its default action again (one inherited
// ignored stays ignored), as libevent puts the previous action back when
// RunHelper's signal events are destroyed. A signal.Notify later catches
// them as usual.
func Restore() {
	for _, sig := range Handled {
		if inheritedIgnored[sig] {
			continue
		}
		// Ignore first: it is the one call that makes Go's runtime forget
		// its handler, so that a later Notify installs it again.
		signal.Ignore(sig)
		Set(sig.(syscall.Signal))
	}
}

// Set gives sig its default action (SIG_DFL) in the kernel, behind Go's
// runtime, which is not told.
func Set(sig syscall.Signal) {
	// struct kernel_sigaction {handler, flags, restorer, mask}; all zero is SIG_DFL.
	var action [4]uint64
	_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(&action)), 0, 8, 0, 0)
}
