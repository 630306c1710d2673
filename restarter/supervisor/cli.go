package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// Version is the restarter's version; release builds set it with
// -ldflags "-X github.com/envoy-restarter/restarter/restarter/supervisor.Version=v1.2.3".
var Version = ""

// Main runs the restarter with the command line args (without the program
// name) and returns its exit code: ExitClean, ExitError or ExitUsage.
func Main(args []string, stdout, stderr io.Writer) int {
	// First of all: with too few file descriptors, the first file, socket or
	// pipe opened makes the Go runtime fail to create its poller, and the
	// process dies with "fatal error: runtime: netpollinit failed".
	if limit, err := openFilesLimit(); err == nil {
		if err := checkOpenFilesLimit(limit); err != nil {
			fmt.Fprintf(stderr, "restarter: %v\n", err)
			return machine.ExitUsage
		}
	}
	if len(args) > 0 && (args[0] == "status" || args[0] == "reload") {
		return clientMain(args[0], args[1:], stdout, stderr)
	}
	cfg, err := ParseArgs(args, stdout)
	var usage *UsageError
	switch {
	case errors.Is(err, errHelp):
		return machine.ExitClean
	case errors.Is(err, errVersion):
		fmt.Fprintf(stdout, "restarter %s\n", version())
		return machine.ExitClean
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "restarter: %s\n", usage)
		return machine.ExitUsage
	case err != nil:
		fmt.Fprintf(stderr, "restarter: %v\n", err)
		return machine.ExitUsage
	}
	if os.Getenv("GOGC") == "" {
		// The live heap is a few hundred KiB: the default target (4 MiB before
		// the first collection, then twice the live heap) would let garbage
		// double the resident memory of a process that mostly idles.
		debug.SetGCPercent(25)
	}
	log, lw := newAsyncLogger(stdout, cfg.LogFormat)
	code := Run(cfg, log)
	lw.flush(logFlushTimeout)
	return code
}

// minOpenFiles is the RLIMIT_NOFILE the restarter requires. Measured with
// examples/start_fakeenvoy.sh (epochs inherit the limit) under a control
// socket, a check, a readiness probe and a hot restart: it runs with 17.
// The restarter itself holds 8 descriptors (stdio, the runtime's poller and
// cgroup files, the control socket), then up to maxControlConns control
// connections, and keeps fdReserve free for forking an epoch and running
// its check: 32 with every control slot taken. 64 doubles that.
const minOpenFiles = 64

// checkOpenFilesLimit refuses an RLIMIT_NOFILE below minOpenFiles.
func checkOpenFilesLimit(limit uint64) error {
	if limit < minOpenFiles {
		return usageErrorf("open files limit (RLIMIT_NOFILE) is %d; the restarter needs at least %d: raise it (ulimit -n, LimitNOFILE=)", limit, minOpenFiles)
	}
	return nil
}

func version() string {
	if Version != "" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" && info.Main.Version != "(devel)" {
			return info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return "devel-" + s.Value
			}
		}
	}
	return "devel"
}
