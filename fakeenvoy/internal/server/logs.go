package server

import (
	"fmt"
	"sync"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/accesslog"
)

// openLogFiles makes the epoch's access log manager, as Envoy's
// InstanceImpl does: its files are written to disk under the region's
// access_log_lock_ (a lock of this process without hot restart), and the
// --log-path log, if any, becomes one of them, replacing stderr
// (Logger::FileSinkDelegate). Envoy fails the same way here for a log
// file it cannot open.
func (s *Server) openLogFiles() error {
	var lock sync.Locker = &sync.Mutex{}
	if s.hr != nil {
		lock = s.hr.Shm.AccessLogLock()
	}
	s.logFiles = accesslog.NewManager(s.opts.FileFlushInterval, s.opts.FileFlushMinSize, lock)
	if s.opts.LogPath == "" {
		return nil
	}
	f, err := s.logFiles.Open(s.opts.LogPath)
	if err != nil {
		return fmt.Errorf("Failed to open log-file '%s'. e.what(): %w", s.opts.LogPath, err)
	}
	s.log.SetSink(f)
	return nil
}

// openAccessLogs opens each access log path once.
func (s *Server) openAccessLogs() error {
	for _, l := range s.cfg.Listeners {
		if l.HTTP == nil {
			continue
		}
		for _, p := range l.HTTP.AccessLogPaths {
			if s.accessLogs[p] != nil {
				continue
			}
			f, err := s.logFiles.Open(p)
			if err != nil {
				return fmt.Errorf("cannot open access log %s: %w", p, err)
			}
			s.accessLogs[p] = f
		}
	}
	return nil
}

// reopenLogs is Envoy's AccessLogManager::reopen, for SIGUSR1 and
// /reopen_logs alike: every file of the manager, the access logs and the
// --log-path log, is reopened at its flusher's next pass.
func (s *Server) reopenLogs() { s.logFiles.Reopen() }

// closeLogs writes what the log files buffered and closes them, the log
// back on stderr, as Envoy's file logger and access log manager go when
// the server is destroyed.
func (s *Server) closeLogs() {
	s.log.SetSink(nil)
	if s.logFiles != nil {
		s.logFiles.Close()
	}
}
