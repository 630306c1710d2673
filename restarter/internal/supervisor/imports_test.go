package supervisor

import (
	"embed"
	"go/parser"
	"go/token"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
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
	files, err := fs.Glob(sources, "*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := sources.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if slices.Contains(forbidden, path) || strings.HasPrefix(path, "net/") {
				t.Errorf("%s imports %s: the loop reaches the OS through osEnv", name, path)
			}
		}
		if name != "env.go" {
			for _, call := range direct.FindAllString(string(src), -1) {
				t.Errorf("%s calls %s directly: go through osEnv (env.go)", name, strings.TrimSuffix(call, "("))
			}
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("checked %d source files; the embed pattern finds the package's sources no more", checked)
	}
}
