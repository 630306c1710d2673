package machine

import "strconv"

// Signal is a signal number as Linux numbers it on the platforms the
// restarter builds for (amd64, arm64: the generic table). The machine has no
// use for the syscall package; the supervisor converts, and a test there
// checks these constants against the platform's.
type Signal int

// The signals the machine acts on or names.
const (
	SIGHUP  Signal = 1
	SIGINT  Signal = 2
	SIGQUIT Signal = 3
	SIGABRT Signal = 6
	SIGKILL Signal = 9
	SIGUSR1 Signal = 10
	SIGSEGV Signal = 11
	SIGUSR2 Signal = 12
	SIGPIPE Signal = 13
	SIGTERM Signal = 15
	SIGCHLD Signal = 17
)

var signalNames = map[Signal]string{
	SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP",
	SIGABRT: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1",
	SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2", SIGPIPE: "SIGPIPE", 14: "SIGALRM", SIGTERM: "SIGTERM",
	16: "SIGSTKFLT", SIGCHLD: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP",
	21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
	26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}

// String returns the conventional name of s, such as SIGHUP, or "signal N".
func (s Signal) String() string {
	if name, ok := signalNames[s]; ok {
		return name
	}
	return "signal " + strconv.Itoa(int(s))
}

// IsStop reports whether s asks the restarter to stop.
func (s Signal) IsStop() bool { return s == SIGTERM || s == SIGINT || s == SIGQUIT }
