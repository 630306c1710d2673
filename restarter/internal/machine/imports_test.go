package machine

import (
	"embed"
	"slices"
	"strings"
	"testing"

	"github.com/envoy-restarter/restarter/internal/importcheck"
)

//go:embed *.go
var sources embed.FS

// TestMachineDoesNoIO keeps the seam: the machine is pure (events in,
// actions out), so it may not import what reaches the operating system.
func TestMachineDoesNoIO(t *testing.T) {
	forbidden := []string{"os", "os/exec", "os/signal", "syscall", "net", "golang.org/x/sys/unix", "io/fs"}
	for name, f := range importcheck.Sources(t, sources, 3) {
		for _, path := range f.Imports {
			if slices.Contains(forbidden, path) || strings.HasPrefix(path, "net/") {
				t.Errorf("%s imports %s: the machine must do no I/O", name, path)
			}
		}
	}
}
