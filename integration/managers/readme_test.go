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

// snippetRE is a README block that stands for an example file: a marker
// comment naming the file, then a fenced block.
var snippetRE = regexp.MustCompile("(?s)<!-- snippet: (examples/[^ ]+) -->\n```[a-z]*\n(.*?)\n```\n")

// withoutComments is an example file as the README shows it: without its
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

// TestReadmeSnippetsAreTheExamples checks that every README block marked as
// an example file is that file, comments aside, and that every example a
// manager runs is shown.
func TestReadmeSnippetsAreTheExamples(t *testing.T) {
	readme, err := os.ReadFile(proctest.Runfile(t, "README_MD", "../../README.md"))
	require.NoError(t, err)
	repo := filepath.Dir(examplesDir(t))
	shown := map[string]bool{}
	for _, m := range snippetRE.FindAllStringSubmatch(string(readme), -1) {
		file, block := m[1], m[2]
		shown[file] = true
		b, err := os.ReadFile(filepath.Join(repo, file))
		require.NoError(t, err, "README.md shows %s", file)
		require.Equal(t, withoutComments(string(b)), block, "README.md's block for %s differs from the file", file)
	}
	for _, file := range []string{
		"examples/envoy.service", "examples/runit/run", "examples/runit/log/run", "examples/s6/run",
		"examples/supervisord/envoy.conf", "examples/monit/envoy.monitrc", "examples/container/Dockerfile",
	} {
		require.True(t, shown[file], "README.md does not show %s", file)
	}
}
