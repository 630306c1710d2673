package managers

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// snippetRE is a block of a document that stands for an example file: a
// marker comment naming the file, then a fenced block.
var snippetRE = regexp.MustCompile("(?s)<!-- snippet: (examples/[^ ]+) -->\n```[a-z]*\n(.*?)\n```\n")

// snippetDocs are the documents that may show example files: the README,
// and the process managers' page, which shows one set per manager. Each is
// found as its runfile (env) under Bazel, by its path from here otherwise.
var snippetDocs = []struct{ name, env, fallback string }{
	{"README.md", "README_MD", "../../README.md"},
	{"docs/PROCESS-MANAGERS.md", "PROCESS_MANAGERS_MD", "../../docs/PROCESS-MANAGERS.md"},
}

// withoutComments is an example file as the documents show it: without its
// comment lines (# and, in supervisord's INI, ;), the shebang kept.
func withoutComments(text string) string {
	var kept []string
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		if (strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "#!")) || strings.HasPrefix(l, ";") {
			continue
		}
		kept = append(kept, line)
	}
	return strings.Trim(strings.Join(kept, "\n"), "\n")
}

// TestReadmeSnippetsAreTheExamples checks that every block of the README or
// docs/PROCESS-MANAGERS.md marked as an example file is that file, comments
// aside, and that every example a manager runs is shown.
func TestReadmeSnippetsAreTheExamples(t *testing.T) {
	repo := filepath.Dir(examplesDir(t))
	shown := map[string]bool{}
	for _, doc := range snippetDocs {
		text, err := os.ReadFile(proctest.Runfile(t, doc.env, doc.fallback))
		require.NoError(t, err)
		for _, m := range snippetRE.FindAllStringSubmatch(string(text), -1) {
			file, block := m[1], m[2]
			shown[file] = true
			b, err := os.ReadFile(filepath.Join(repo, file))
			require.NoError(t, err, "%s shows %s", doc.name, file)
			require.Equal(t, withoutComments(string(b)), block, "%s's block for %s differs from the file", doc.name, file)
		}
	}
	require.NotEmpty(t, shown, "no block marked <!-- snippet: examples/... --> in README.md or docs/PROCESS-MANAGERS.md")
	for _, file := range []string{
		"examples/envoy.service", "examples/runit/run", "examples/runit/log/run", "examples/s6/run",
		"examples/supervisord/envoy.conf", "examples/monit/envoy.monitrc", "examples/container/Dockerfile",
	} {
		require.True(t, shown[file], "neither README.md nor docs/PROCESS-MANAGERS.md shows %s", file)
	}
}
