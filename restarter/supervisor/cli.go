package supervisor

import (
	"errors"
	"fmt"
	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/logging"
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
		if err := config.CheckOpenFilesLimit(limit); err != nil {
			fmt.Fprintf(stderr, "restarter: %v\n", err)
			return machine.ExitUsage
		}
	}
	if len(args) > 0 && (args[0] == "status" || args[0] == "reload") {
		return clientMain(args[0], args[1:], stdout, stderr)
	}
	cfg, err := config.Parse(args, stdout)
	var usage *config.UsageError
	switch {
	case errors.Is(err, config.ErrHelp):
		return machine.ExitClean
	case errors.Is(err, config.ErrVersion):
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
	log, lw := logging.NewAsync(stdout, cfg.LogFormat)
	code := Run(cfg, log)
	lw.Flush(logging.FlushTimeout)
	return code
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
