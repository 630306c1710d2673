package metrics

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// exampleRE is docs/METRICS.md's example output: the fenced block after its
// marker.
var exampleRE = regexp.MustCompile("(?s)<!-- example: realisticSnapshot \\(restarter/internal/metrics\\) -->\n```\n(.*?)```\n")

func TestDocsShowWhatWriteWrites(t *testing.T) {
	doc, err := os.ReadFile(proctest.Runfile(t, "METRICS_MD", "../../../docs/METRICS.md"))
	require.NoError(t, err)

	// The example is the realistic snapshot, written, HELP lines and all.
	m := exampleRE.FindSubmatch(doc)
	require.NotNil(t, m, "docs/METRICS.md has no block after <!-- example: realisticSnapshot (restarter/internal/metrics) -->")
	require.Equal(t, string(written(t, realisticSnapshot())), string(m[1]))

	// The table names every family.
	for name := range families {
		require.Regexp(t, "(?m)^\\| `"+name+"(\\{outcome\\})?` \\| ", string(doc), "docs/METRICS.md's table row for %s", name)
	}
}
