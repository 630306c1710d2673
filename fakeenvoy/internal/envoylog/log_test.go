package envoylog

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFormatIsEnvoys(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	assert.Equal(t, "[2024-05-06 07:08:09.123][42][info][main] [f.go:1] starting main dispatch loop\n",
		Format(at, 42, "info", "main", "f.go:1", "starting main dispatch loop"))
}

func TestLinesNameTheirSource(t *testing.T) {
	var b strings.Builder
	l := NewWriter(&b)
	l.Warn("main", "caught %s", "SIGTERM")
	assert.Regexp(t, regexp.MustCompile(`^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\]\[\d+\]\[warning\]\[main\] \[fakeenvoy/internal/envoylog/log_test.go:\d+\] caught SIGTERM\n$`), b.String())
}

func TestReopenAfterMove(t *testing.T) {
	p := filepath.Join(t.TempDir(), "envoy.log")
	l, err := New(p)
	require.NoError(t, err)
	l.Info("main", "before")
	require.NoError(t, os.Rename(p, p+".1"))
	require.NoError(t, l.Reopen())
	l.Info("main", "after")
	require.NoError(t, l.Close())
	old, _ := os.ReadFile(p + ".1")
	cur, _ := os.ReadFile(p)
	assert.Contains(t, string(old), "before")
	assert.Contains(t, string(cur), "after")
	assert.NotContains(t, string(cur), "before")
}
