package logging

import (
	"io"
	"sync"
	"time"
)

// maxPendingLines bounds the log lines waiting for a slow reader. The
// restarter logs a few lines per event, so this holds minutes of a busy
// restarter's log; past it, lines are dropped and counted.
const maxPendingLines = 256

// FlushTimeout bounds how long the restarter waits, at exit, for its log
// reader to take the lines still pending.
const FlushTimeout = time.Second

// Writer hands log lines to a writer goroutine through a bounded queue,
// so that a log reader that is slow, stalled (a full pipe) or gone (EPIPE)
// never blocks the event loop. Lines that do not fit are dropped and
// counted; once a write succeeds again, the count is reported in a line of
// its own, made by dropped. Write never blocks and never fails.
type Writer struct {
	w       io.Writer
	dropped func(n int) []byte // the line reporting n dropped lines

	mu      sync.Mutex
	queue   [][]byte
	lost    int           // lines dropped since the last report
	wake    chan struct{} // has room for one: the writer has work
	idle    chan struct{} // closed and replaced when the queue is empty and nothing is being written
	writing bool
}

// newWriter starts the writer goroutine for w. dropped formats the
// report of n dropped lines as a complete line.
func newWriter(w io.Writer, dropped func(n int) []byte) *Writer {
	lw := &Writer{w: w, dropped: dropped, wake: make(chan struct{}, 1), idle: make(chan struct{})}
	go lw.run()
	return lw
}

// Write queues one complete line (a copy of p). It reports success even
// when the line is dropped: a log line is never worth stopping for.
func (lw *Writer) Write(p []byte) (int, error) {
	lw.mu.Lock()
	if len(lw.queue) >= maxPendingLines {
		lw.lost++
	} else {
		lw.queue = append(lw.queue, append([]byte(nil), p...))
	}
	lw.mu.Unlock()
	select {
	case lw.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (lw *Writer) run() {
	for range lw.wake {
		for {
			lw.mu.Lock()
			if len(lw.queue) == 0 {
				lw.writing = false
				close(lw.idle)
				lw.idle = make(chan struct{})
				lw.mu.Unlock()
				break
			}
			line := lw.queue[0]
			lw.queue = lw.queue[1:]
			lw.writing = true
			lw.mu.Unlock()
			if _, err := lw.w.Write(line); err != nil {
				// EPIPE (the reader is gone) or any other error: the line is
				// lost, and counted, as a dropped one.
				lw.mu.Lock()
				lw.lost++
				lw.mu.Unlock()
				continue
			}
			lw.mu.Lock()
			lost := lw.lost
			lw.lost = 0
			lw.mu.Unlock()
			if lost > 0 {
				// The reader is back: say what it missed, once.
				if _, err := lw.w.Write(lw.dropped(lost)); err != nil {
					lw.mu.Lock()
					lw.lost += lost
					lw.mu.Unlock()
				}
			}
		}
	}
}

// Flush waits until every queued line is written, or timeout passes (a
// stalled reader), whichever comes first.
func (lw *Writer) Flush(timeout time.Duration) {
	deadline := time.After(timeout)
	for {
		lw.mu.Lock()
		if len(lw.queue) == 0 && !lw.writing {
			lw.mu.Unlock()
			return
		}
		idle := lw.idle
		lw.mu.Unlock()
		select {
		case <-idle:
		case <-deadline:
			return
		}
	}
}
