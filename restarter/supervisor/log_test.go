package supervisor

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoggerFormats(t *testing.T) {
	var text strings.Builder
	log := NewLogger(&text, "text")
	log.Debug("hidden")
	log.Info("PID=1 exited with code=0", "pid", 1)
	log.Warn("careful")
	log.Error("broken")
	log.With("k", "v").WithGroup("g").Info("grouped")
	require.Equal(t, "[info][restarter] PID=1 exited with code=0\n[warning][restarter] careful\n[error][restarter] broken\n[info][restarter] grouped\n",
		timeAndPID.ReplaceAllString(text.String(), ""))

	var js strings.Builder
	NewLogger(&js, "json").Info("PID=1 exited with code=0", "pid", 1)
	require.Contains(t, js.String(), `"msg":"PID=1 exited with code=0","component":"restarter","pid":1}`)
}
