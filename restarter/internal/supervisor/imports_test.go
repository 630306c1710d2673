package supervisor

import (
	"embed"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/envoy-restarter/restarter/internal/importcheck"
)

//go:embed *.go
var sources embed.FS

// TestTheLoopReachesTheOSOnlyThroughOSEnv keeps the seam: the event loop
// imports no raw system call package, and only env.go, which wires the real
// OS into osEnv, opens files, installs signal handlers or signals and reaps
// processes; the fake-OS tests can then run the whole loop.
func TestTheLoopReachesTheOSOnlyThroughOSEnv(t *testing.T) {
	forbidden := []string{"golang.org/x/sys/unix", "unsafe", "net"}
	direct := regexp.MustCompile(`\b(os\.(Open|OpenFile|ReadFile|WriteFile|Create|Remove|RemoveAll|Readlink|Lstat|Stat|Mkdir|MkdirAll|Chmod|FindProcess|StartProcess)|signal\.(Notify|Ignore)|syscall\.(Kill|Wait4|ForkExec|Exec|Mmap|Open)|exec\.LookPath|time\.AfterFunc)\(`)
	for name, f := range importcheck.Sources(t, sources, 5) {
		for _, path := range f.Imports {
			if slices.Contains(forbidden, path) || strings.HasPrefix(path, "net/") {
				t.Errorf("%s imports %s: the loop reaches the OS through osEnv", name, path)
			}
		}
		if name != "env.go" {
			for _, call := range direct.FindAllString(f.Source, -1) {
				t.Errorf("%s calls %s directly: go through osEnv (env.go)", name, strings.TrimSuffix(call, "("))
			}
		}
	}
}
