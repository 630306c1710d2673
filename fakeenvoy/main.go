// Command fakeenvoy is a test double for Envoy's hot restart: same flags,
// names, messages and exit codes where the restarter or an operator can
// see them. See README.md.
package main

import (
	"os"
	"runtime"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/server"
	"golang.org/x/sys/unix"
)

// Keep main on the main thread: PR_SET_PDEATHSIG set from another thread
// would not apply to the process.
func init() { runtime.LockOSThread() }

func main() {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	os.Exit(server.Main(os.Args[1:], ts.Nano()))
}
