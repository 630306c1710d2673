// Package envoylog writes fakeenvoy's log lines in Envoy's default format:
//
//	[YYYY-MM-DD HH:MM:SS.mmm][pid][level][component] [file:line] message
//
// to a sink, as Envoy's DelegatingLogSink does (source/common/common/
// logger.cc): stderr, each line written holding a lock (the hot restart
// region's log_lock_, which every epoch shares, once the region is
// attached), or the --log-path file of the access log manager, buffered.
// A critical line is flushed at once, as Envoy's loggers flush on critical.
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

// Sink receives whole formatted lines: Envoy's SinkDelegate. An
// accesslog.File is one.
type Sink interface {
	Write(line string)
	Flush()
}

// Logger formats lines and hands them to its sink. It is safe for
// concurrent use.
type Logger struct {
	pid    int
	stderr *lockedWriter
	mu     sync.RWMutex // held to swap the sink, as Envoy's sink_mutex_
	sink   Sink
}

// New returns a logger writing to stderr under a lock of this process
// only, as Envoy's sink is until the hot restart region gives it one.
func New() *Logger { return NewWriter(os.Stderr) }

// NewWriter is New writing to w instead of stderr.
func NewWriter(w io.Writer) *Logger {
	stderr := &lockedWriter{w: w, lock: &sync.Mutex{}}
	return &Logger{pid: os.Getpid(), stderr: stderr, sink: stderr}
}

// SetLock makes the stderr sink write each line holding lock, as Envoy's
// Logger::Context gives it the hot restart region's log_lock_. Call it
// before logging concurrently.
func (l *Logger) SetLock(lock sync.Locker) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stderr.lock = lock
}

// SetSink sends lines to s from now on; nil sends them to stderr again.
// It is Envoy's FileSinkDelegate taking over for --log-path, and its
// destruction at exit.
func (l *Logger) SetSink(s Sink) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s == nil {
		s = l.stderr
	}
	l.sink = s
}

// Flush flushes the sink (Envoy's ENVOY_FLUSH_LOG).
func (l *Logger) Flush() {
	l.mu.RLock()
	defer l.mu.RUnlock()
	l.sink.Flush()
}

// lockedWriter is Envoy's StderrSinkDelegate: std::cerr is unbuffered, so
// each line is one write, made holding the lock.
type lockedWriter struct {
	w    io.Writer
	lock sync.Locker
}

func (s *lockedWriter) Write(line string) {
	s.lock.Lock()
	defer s.lock.Unlock()
	_, _ = io.WriteString(s.w, line)
}

// Flush takes the lock too, as Envoy's does to flush std::cerr.
func (s *lockedWriter) Flush() {
	s.lock.Lock()
	defer s.lock.Unlock()
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
	l.mu.RLock()
	defer l.mu.RUnlock()
	l.sink.Write(s)
	if level == "critical" {
		l.sink.Flush()
	}
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

// Critical logs at level critical and flushes the sink.
func (l *Logger) Critical(component, format string, args ...any) {
	l.log("critical", component, format, args)
}
