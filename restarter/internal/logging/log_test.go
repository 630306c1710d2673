package logging

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

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

func TestParseFormat(t *testing.T) {
	for name, want := range map[string]Format{"text": Text, "json": JSON} {
		got, err := ParseFormat(name)
		require.NoError(t, err)
		require.Equal(t, want, got, name)
	}
	for _, bad := range []string{"", "JSON", "xml"} {
		_, err := ParseFormat(bad)
		require.Error(t, err, "%q", bad)
	}
}

func TestTextLevelsAreEnvoys(t *testing.T) {
	// Debug records are not logged, but a record handed to the handler
	// directly still gets Envoy's name for its level.
	var text strings.Builder
	h := New(&text, Text).Handler()
	require.False(t, h.Enabled(context.Background(), slog.LevelDebug))
	require.True(t, h.Enabled(context.Background(), slog.LevelInfo))
	for _, tt := range []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelDebug, "debug"},
		{slog.LevelInfo, "info"},
		{slog.LevelInfo + 2, "info"},
		{slog.LevelWarn, "warning"},
		{slog.LevelError, "error"},
		{slog.LevelError + 4, "error"},
	} {
		text.Reset()
		require.NoError(t, h.Handle(context.Background(), slog.NewRecord(time.Now(), tt.level, "m", 0)))
		require.Equal(t, "["+tt.want+"][restarter] m\n", timeAndPID.ReplaceAllString(text.String(), ""), "level %v", tt.level)
	}
}

func TestTextRecordWithoutATimeIsStampedNow(t *testing.T) {
	var text strings.Builder
	h := New(&text, Text).Handler()
	before := time.Now().Truncate(time.Millisecond)
	require.NoError(t, h.Handle(context.Background(), slog.NewRecord(time.Time{}, slog.LevelInfo, "no time", 0)))
	after := time.Now()
	stamp := strings.TrimPrefix(text.String(), "[")[:len("2006-01-02 15:04:05.000")]
	at, err := time.ParseInLocation("2006-01-02 15:04:05.000", stamp, time.Local)
	require.NoError(t, err, text.String())
	require.False(t, at.Before(before), "%s is before %s", at, before)
	require.False(t, at.After(after), "%s is after %s", at, after)
}
