package server

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// accessLog is one access log file, shared by every listener naming the
// same path. Each request is one write of one whole line, straight to the
// file (Envoy buffers for up to --file-flush-interval-msec; fakeenvoy does
// not, so a response seen by a client implies its line is on disk).
type accessLog struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openAccessLog(path string) (*accessLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open access log %s: %w", path, err)
	}
	return &accessLog{path: path, f: f}, nil
}

func (a *accessLog) write(line string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, _ = io.WriteString(a.f, line)
}

// reopen swaps in a freshly opened file; a line goes either to the moved
// file or to the new one, never nowhere.
func (a *accessLog) reopen() error {
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	a.mu.Lock()
	old := a.f
	a.f = f
	a.mu.Unlock()
	return old.Close()
}

func (a *accessLog) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.f.Close()
}

// reopenLogs is Envoy's AccessLogManager::reopen, for SIGUSR1 and
// /reopen_logs alike: every access log, and the --log-path file, which
// Envoy writes through the same manager.
func (s *Server) reopenLogs() {
	for _, a := range s.accessLogs {
		if err := a.reopen(); err != nil {
			s.log.Error("main", "cannot reopen access log %s: %v", a.path, err)
		}
	}
	if err := s.log.Reopen(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
