package logging

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// timeAndPID matches the time and pid that start each text line.
var timeAndPID = regexp.MustCompile(`(?m)^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\]\[\d+\]`)

func TestLoggerFormats(t *testing.T) {
	var text strings.Builder
	log := New(&text, Text)
	log.Debug("hidden")
	log.Info("PID=1 exited with code=0", "pid", 1)
	log.Warn("careful")
	log.Error("broken")
	log.With("k", "v").WithGroup("g").Info("grouped")
	require.Equal(t, "[info][restarter] PID=1 exited with code=0\n[warning][restarter] careful\n[error][restarter] broken\n[info][restarter] grouped\n",
		timeAndPID.ReplaceAllString(text.String(), ""))

	var js strings.Builder
	New(&js, JSON).Info("PID=1 exited with code=0", "pid", 1)
	require.Contains(t, js.String(), `"msg":"PID=1 exited with code=0","component":"restarter","pid":1}`)
}
