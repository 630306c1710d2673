// Package cli is the restarter's command line: `restarter [flags] COMMAND`
// runs the supervisor, `restarter status` and `restarter reload` are
// clients of its control socket.
package cli

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/logging"
	"github.com/envoy-restarter/restarter/restarter/internal/supervisor"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// Main runs the restarter with the command line args (without the program
// name) and returns its exit code: ExitClean, ExitError or ExitUsage.
func Main(args []string, stdout, stderr io.Writer) int {
	// First of all: with too few file descriptors, the first file, socket or
	// pipe opened makes the Go runtime fail to create its poller, and the
	// process dies with "fatal error: runtime: netpollinit failed".
	if limit, err := openFilesLimit(); err == nil {
		if err := config.CheckOpenFilesLimit(limit); err != nil {
			fmt.Fprintf(stderr, "restarter: %v\n", err)
			return machine.ExitUsage
		}
	}
	if len(args) > 0 && (args[0] == "status" || args[0] == "reload" || args[0] == "metrics") {
		return clientMain(args[0], args[1:], stdout, stderr)
	}
	cfg, err := config.Parse(args, stdout)
	var usage *config.UsageError
	switch {
	case errors.Is(err, config.ErrHelp):
		return machine.ExitClean
	case errors.Is(err, config.ErrVersion):
		fmt.Fprintf(stdout, "restarter %s\n", config.Version())
		return machine.ExitClean
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "restarter: %s\n", usage)
		return machine.ExitUsage
	case err != nil:
		fmt.Fprintf(stderr, "restarter: %v\n", err)
		return machine.ExitUsage
	}
	log, lw := logging.NewAsync(stdout, cfg.LogFormat)
	code := supervisor.Run(cfg, log)
	lw.Flush(logging.FlushTimeout)
	return code
}

// openFilesLimit returns the RLIMIT_NOFILE soft limit: the one in effect,
// which the Go runtime raised at start-up to the hard limit less one, if it
// was lower (and restores for the processes it starts).
func openFilesLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("getrlimit(RLIMIT_NOFILE): %w", err)
	}
	return rl.Cur, nil
}

// TuneRuntime sizes the Go runtime for the restarter, a process that
// mostly idles and then does a little work on one event loop, unless the
// operator's environment (getenv) sets GOGC or GOMAXPROCS.
func TuneRuntime(getenv func(string) string) {
	if getenv("GOGC") == "" {
		// The live heap is a few hundred KiB: the default target (4 MiB before
		// the first collection, then twice the live heap) would let garbage
		// double the resident memory.
		debug.SetGCPercent(25)
	}
	if getenv("GOMAXPROCS") == "" {
		// One event loop does the work; a second P only adds the runtime's
		// hand-offs (another thread woken to look for work, then put back to
		// sleep) to every wake-up: about 0.8 ms of CPU per hot restart on 2
		// cores (docs/BENCHMARKS.md, issue 19). A blocking system call, such
		// as the forking thread's, still hands the P over.
		runtime.GOMAXPROCS(1)
	}
}
