package envoylog

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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

// countingLock counts its holders.
type countingLock struct {
	sync.Mutex
	held int
}

func (c *countingLock) Lock() { c.Mutex.Lock(); c.held++ }

// Mirrors source/common/common/logger.cc StderrSinkDelegate::log and
// flush: each line, and each flush, holds the lock Logger::Context gave
// the sink (the hot restart region's log_lock_).
func TestStderrLinesHoldTheLock(t *testing.T) {
	var b strings.Builder
	l := NewWriter(&b)
	lock := &countingLock{}
	l.SetLock(lock)
	l.Info("main", "one")
	l.Flush()
	assert.Equal(t, 2, lock.held)
	assert.Contains(t, b.String(), "] one\n")
}

// recordingSink records lines and flushes.
type recordingSink struct{ events []string }

func (r *recordingSink) Write(line string) { r.events = append(r.events, "line") }
func (r *recordingSink) Flush()            { r.events = append(r.events, "flush") }

// Mirrors source/common/common/logger.cc (Logger: flush_on critical) and
// the FileSinkDelegate of --log-path (source/common/common/
// logger_delegates.cc) replacing stderr: lines go to the file's buffer,
// and a critical line is flushed at once.
func TestFileSinkFlushesCriticalLines(t *testing.T) {
	var stderr strings.Builder
	l := NewWriter(&stderr)
	file := &recordingSink{}
	l.SetSink(file)
	l.Info("main", "buffered")
	l.Error("main", "buffered too")
	l.Critical("main", "flushed")
	assert.Equal(t, []string{"line", "line", "line", "flush"}, file.events)
	assert.Empty(t, stderr.String())

	l.SetSink(nil)
	l.Info("main", "back on stderr")
	assert.Contains(t, stderr.String(), "back on stderr")
	assert.Len(t, file.events, 4)
}
