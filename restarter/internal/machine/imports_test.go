package machine

import (
	"embed"
	"go/parser"
	"go/token"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"
)

//go:embed *.go
var sources embed.FS

// TestMachineDoesNoIO keeps the seam: the machine is pure (events in,
// actions out), so it may not import what reaches the operating system.
func TestMachineDoesNoIO(t *testing.T) {
	forbidden := []string{"os", "os/exec", "os/signal", "syscall", "net", "golang.org/x/sys/unix", "io/fs"}
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
				t.Errorf("%s imports %s: the machine must do no I/O", name, path)
			}
		}
		checked++
	}
	if checked < 3 {
		t.Fatalf("checked %d source files; the embed pattern finds the package's sources no more", checked)
	}
}
