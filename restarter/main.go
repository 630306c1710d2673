// Command restarter hot restarts Envoy: a drop-in replacement for Envoy's
// restarter/hot-restarter.py. See docs/OPERATIONS.md for its signals,
// flags and exit codes.
package main

import (
	"os"

	"github.com/envoy-restarter/restarter/restarter/internal/cli"
)

func main() {
	cli.TuneRuntime(os.Getenv)
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
