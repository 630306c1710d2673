// Package importcheck is for tests that keep a package's seams: it lists
// what each of a package's own source files imports, from the files the
// test embeds (so that it works under `go test` and Bazel alike).
package importcheck

import (
	"go/parser"
	"go/token"
	"io/fs"
	"strconv"
	"strings"
	"testing"
)

// Sources returns the package's non-test Go files in fsys (embedded with
// //go:embed *.go), by name, with their content and imports. It fails the
// test when fewer than min are found: an embed pattern that finds the
// sources no more must not pass silently.
func Sources(t testing.TB, fsys fs.FS, min int) map[string]File {
	t.Helper()
	names, err := fs.Glob(fsys, "*.go")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]File{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		file := File{Source: string(src)}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			file.Imports = append(file.Imports, path)
		}
		files[name] = file
	}
	if len(files) < min {
		t.Fatalf("found %d source files, want at least %d: the embed pattern finds the package's sources no more", len(files), min)
	}
	return files
}

// File is one source file.
type File struct {
	Source  string
	Imports []string
}
