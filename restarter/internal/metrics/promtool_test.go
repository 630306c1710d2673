package metrics

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPromtoolFindsNoLintProblem runs Prometheus' own linter, `promtool
// check metrics` (Debian's prometheus package), on what Write writes. It
// is skipped where promtool is not installed, unless
// RESTARTER_PROMTOOL_REQUIRED is set (CI installs it and sets it).
func TestPromtoolFindsNoLintProblem(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("RESTARTER_PROMTOOL_REQUIRED") != "" {
			t.Fatalf("promtool is required (RESTARTER_PROMTOOL_REQUIRED) but not found: %v", err)
		}
		t.Skip("promtool not installed (Debian's prometheus package)")
	}
	for _, tc := range []struct {
		name string
		s    Snapshot
	}{
		{"one hot restart ok, one failed", realisticSnapshot()},
		{"no hot restart yet", Snapshot{StartTime: realisticSnapshot().StartTime}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
			cmd.Stdin = bytes.NewReader(written(t, tc.s))
			// Not the exit status alone: promtool 2.42 exits 3 on a lint
			// problem, but not every version need. Any output is a problem.
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "promtool check metrics:\n%s", out)
			require.Empty(t, string(out), "promtool check metrics")
		})
	}
}
