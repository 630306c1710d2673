// Package envoylog writes fakeenvoy's log lines in Envoy's default format:
//
//	[YYYY-MM-DD HH:MM:SS.mmm][pid][level][component] [file:line] message
package envoylog

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Logger writes Envoy-format lines to stderr or to a file that can be
// reopened after rotation. It is safe for concurrent use.
type Logger struct {
	mu   sync.Mutex
	path string
	out  io.Writer
	file *os.File
	pid  int
}

// New returns a logger writing to path, or to stderr when path is empty.
func New(path string) (*Logger, error) {
	l := &Logger{path: path, out: os.Stderr, pid: os.Getpid()}
	if path != "" {
		f, err := openAppend(path)
		if err != nil {
			return nil, err
		}
		l.file, l.out = f, f
	}
	return l, nil
}

// NewWriter returns a logger writing to w; Reopen is a no-op for it.
func NewWriter(w io.Writer) *Logger {
	return &Logger{out: w, pid: os.Getpid()}
}

func openAppend(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

// Reopen reopens the log file (after a move by logrotate); lines written
// concurrently land in either the old or the new file, never nowhere.
func (l *Logger) Reopen() error {
	if l.path == "" {
		return nil
	}
	f, err := openAppend(l.path)
	if err != nil {
		return fmt.Errorf("reopen log %s: %w", l.path, err)
	}
	l.mu.Lock()
	old := l.file
	l.file, l.out = f, f
	l.mu.Unlock()
	return old.Close()
}

// Close closes the log file, if any.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file, l.out = nil, os.Stderr
	return err
}

// Format renders one line; exported for tests that parse log output.
func Format(t time.Time, pid int, level, component, source, msg string) string {
	return fmt.Sprintf("[%s][%d][%s][%s] [%s] %s\n",
		t.Format("2006-01-02 15:04:05.000"), pid, level, component, source, msg)
}

func (l *Logger) log(level, component, format string, args []any) {
	_, file, line, ok := runtime.Caller(2)
	source := "unknown:0"
	if ok {
		if i := strings.LastIndex(file, "fakeenvoy/"); i >= 0 {
			file = file[i:]
		}
		source = fmt.Sprintf("%s:%d", file, line)
	}
	s := Format(time.Now(), l.pid, level, component, source, fmt.Sprintf(format, args...))
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.out, s)
}

// Debug logs at level debug.
func (l *Logger) Debug(component, format string, args ...any) {
	l.log("debug", component, format, args)
}

// Info logs at level info.
func (l *Logger) Info(component, format string, args ...any) {
	l.log("info", component, format, args)
}

// Warn logs at level warning, spelled as Envoy spells it.
func (l *Logger) Warn(component, format string, args ...any) {
	l.log("warning", component, format, args)
}

// Error logs at level error.
func (l *Logger) Error(component, format string, args ...any) {
	l.log("error", component, format, args)
}

// Critical logs at level critical.
func (l *Logger) Critical(component, format string, args ...any) {
	l.log("critical", component, format, args)
}
