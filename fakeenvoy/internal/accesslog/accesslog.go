// Package accesslog is Envoy's access log manager
// (source/common/access_log/access_log_manager_impl.cc): every file Envoy
// writes lines to, the access logs and the --log-path log alike, is
// buffered in memory and written by a flusher of its own. A line reaches
// the disk when the buffer grows past the minimum flush size
// (--file-flush-min-size-kb, 64 KiB), at the flush timer
// (--file-flush-interval-msec, 10 s), on an explicit Flush (Envoy's logger
// flushes on each critical line), or when the file is closed; the very
// first line of a file goes out at once, as Envoy's flush thread, started
// by it, finds it waiting. Every write to disk is made under one lock that
// all epochs share (the region's access_log_lock_), and a reopen (SIGUSR1,
// /reopen_logs) happens at the flusher's next pass: what was buffered
// before it goes to the new file.
package accesslog

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Defaults are Envoy's (source/server/options_impl.cc).
const (
	DefaultFlushInterval = 10 * time.Second
	DefaultMinFlushSize  = 64 * 1024
)

// Manager is Envoy's AccessLogManagerImpl: one File per path.
type Manager struct {
	flushInterval time.Duration
	minFlushSize  int
	lock          sync.Locker

	mu    sync.Mutex
	files map[string]*File
}

// NewManager returns a manager whose files flush every flushInterval or
// past minFlushSize bytes, and write to disk holding lock.
func NewManager(flushInterval time.Duration, minFlushSize int, lock sync.Locker) *Manager {
	return &Manager{flushInterval: flushInterval, minFlushSize: minFlushSize, lock: lock, files: map[string]*File{}}
}

// Open is createAccessLog: the file for path, opened (for appending,
// created 0644) the first time it is asked for.
func (m *Manager) Open(path string) (*File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.files[path]; f != nil {
		return f, nil
	}
	fd, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	f := &File{
		path: path, lock: m.lock, minFlushSize: m.minFlushSize, file: fd,
		timer: time.NewTicker(m.flushInterval), kick: make(chan struct{}, 1), done: make(chan struct{}),
	}
	m.files[path] = f
	return f, nil
}

// Reopen marks every file for reopening at its flusher's next pass.
func (m *Manager) Reopen() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.files {
		f.Reopen()
	}
}

// Close writes what every file has buffered and closes them.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.files {
		f.Close()
	}
	m.files = map[string]*File{}
}

// openAppend opens path as Envoy's files are, failing with Envoy's text
// ("unable to open file 'PATH': No such file or directory").
func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return nil, fmt.Errorf("unable to open file '%s': %s", path, strerror(err))
	}
	return f, nil
}

// strerror is C's strerror as glibc words it: Go's errno text, capitalised.
func strerror(err error) string {
	msg := err.Error()
	if msg == "" {
		return msg
	}
	return strings.ToUpper(msg[:1]) + msg[1:]
}

// File is Envoy's AccessLogFileImpl.
type File struct {
	path         string
	lock         sync.Locker // file_lock_: every epoch's writes to disk
	minFlushSize int
	timer        *time.Ticker  // the flush timer
	kick         chan struct{} // flush_event_
	done         chan struct{} // closed when the flusher returns

	mu      sync.Mutex // write_lock_
	buf     []byte     // flush_buffer_
	reopen  bool
	exit    bool
	started bool // the flusher runs: from the first Write
	// waits counts the flusher's waits for something to write: a line
	// written while it waits stays buffered (the tests wait for a count).
	waits int

	flushing sync.Mutex // flush_lock_: a buffer taken is on disk before the next
	file     *os.File   // nil after a failed reopen; under flushing
}

// Path is the file's path.
func (f *File) Path() string { return f.path }

// Write buffers s, starting the flusher on the first write and waking it
// once the buffer holds more than the minimum flush size.
func (f *File) Write(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.started {
		f.started = true
		go f.flusher()
	}
	f.buf = append(f.buf, s...)
	if len(f.buf) > f.minFlushSize {
		f.wake()
	}
}

// Reopen has the flusher close and reopen the path at its next pass, as
// after logrotate moved it.
func (f *File) Reopen() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reopen = true
	f.wake()
}

// Flush writes what is buffered now, and returns once it is on disk.
func (f *File) Flush() {
	f.mu.Lock()
	f.flushing.Lock()
	defer f.flushing.Unlock()
	data := f.buf
	f.buf = nil
	f.mu.Unlock()
	f.write(data)
}

// Close stops the flusher, writes what is left to the file open now and
// closes it.
func (f *File) Close() {
	f.mu.Lock()
	f.exit = true
	started := f.started
	f.wake()
	f.mu.Unlock()
	if started {
		<-f.done
	}
	f.timer.Stop()
	f.Flush()
	f.flushing.Lock()
	defer f.flushing.Unlock()
	if f.file != nil {
		_ = f.file.Close()
		f.file = nil
	}
}

func (f *File) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// flusher is Envoy's flush thread: it waits for something to write or a
// reopen (woken by the size threshold, the timer or a reopen), takes the
// buffer, reopens the file if asked, and writes.
func (f *File) flusher() {
	defer close(f.done)
	// A tick before the flusher existed woke nobody in Envoy either.
	select {
	case <-f.timer.C:
	default:
	}
	reopen := false // a reopen that failed is tried again at the next pass
	for {
		f.mu.Lock()
		for len(f.buf) == 0 && !f.exit && !f.reopen {
			f.waits++
			f.mu.Unlock()
			select {
			case <-f.kick:
			case <-f.timer.C:
			}
			f.mu.Lock()
		}
		if f.exit {
			f.mu.Unlock()
			return
		}
		f.flushing.Lock()
		data := f.buf
		f.buf = nil
		reopen = reopen || f.reopen
		f.reopen = false
		f.mu.Unlock()
		if reopen {
			reopen = !f.reopenFile()
		}
		f.write(data)
		f.flushing.Unlock()
	}
}

// reopenFile closes the file and opens the path again; false if that
// failed (the file then stays closed and writes are dropped, as Envoy's).
// Called holding flushing.
func (f *File) reopenFile() bool {
	if f.file != nil {
		_ = f.file.Close()
		f.file = nil
	}
	file, err := openAppend(f.path)
	if err != nil {
		return false
	}
	f.file = file
	return true
}

// write is Envoy's doWrite: to disk under the lock every epoch shares, so
// that epochs writing one file never interleave within a buffer. Called
// holding flushing.
func (f *File) write(data []byte) {
	if len(data) == 0 || f.file == nil {
		return
	}
	f.lock.Lock()
	defer f.lock.Unlock()
	_, _ = f.file.Write(data)
}
