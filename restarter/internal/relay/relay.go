// Package relay is the log relay: it copies the lines that children write
// into pipes the restarter owns to the restarter's own stdout or stderr,
// unchanged, through a bounded buffer, so that a stalled or gone log
// reader costs lines (dropped, counted and reported once it reads again)
// and never blocks a child. Envoy's log lock is shared by every epoch, so
// one epoch blocked on a full stderr pipe would block them all.
//
// Readers (one goroutine per source) never wait for the destination: they
// read into a buffer of their own and queue whole lines; when the queue is
// full, the lines that do not fit are dropped whole. One writer goroutine
// per Relay writes the queue to the destination in whole lines, so lines
// from different sources never mix within a line, and each source's lines
// keep their order.
package relay

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultBuffered is the queue size the restarter uses: about 1700
	// lines of Envoy's typical 150 bytes.
	DefaultBuffered = 256 << 10

	// MaxLine is the longest line relayed unchanged, its newline included.
	// A longer line is relayed as lines of MaxLine bytes: its first
	// MaxLine-1 bytes and a newline the relay adds, and so on (as
	// journald's LineMax splits a long line into records).
	MaxLine = 64 << 10

	// atomicWrite is Linux's PIPE_BUF: a write to a pipe of at most this
	// many bytes is never mixed with other writers' (the restarter's own
	// log lines go to the same pipe), so the writer writes at most this
	// much at a time, unless one line is longer.
	atomicWrite = 4096
)

// Relay copies lines from any number of sources to one destination (the
// restarter's stdout, or its stderr). Its methods are safe for concurrent
// use.
type Relay struct {
	dst     io.Writer
	dropped func(n uint64) []byte

	mu          sync.Mutex
	wake        *sync.Cond // the writer waits on it for lines, or for Close
	q           ring
	in, out     uint64    // bytes ever queued, and ever taken by the writer
	partialEnds []uint64  // where (in bytes ever queued) each queued partial last line ends
	sources     []*Source // those not ended
	closing     bool      // Close was called: Add takes no more sources
	closed      bool      // Close is done with the sources: lines read now are dropped

	total      atomic.Uint64 // lines dropped, ever
	unreported atomic.Uint64 // lines dropped since the last report
	stopped    chan struct{} // closed when the writer goroutine returns

	midLine bool // the writer's: the last byte written was not a newline
}

// New starts a relay to dst that queues at most maxBuffered bytes (raised
// to MaxLine if lower; DefaultBuffered is the restarter's). When lines were
// dropped, dropped(n) is called for the report line to write (in the
// restarter's own log format, ending with a newline) before the next line
// written: that is, once the reader reads again. dropped must not be nil.
func New(dst io.Writer, maxBuffered int, dropped func(n uint64) []byte) *Relay {
	if dropped == nil {
		panic("relay.New: dropped is nil")
	}
	r := &Relay{
		dst:     dst,
		dropped: dropped,
		q:       ring{buf: make([]byte, max(maxBuffered, MaxLine))},
		stopped: make(chan struct{}),
	}
	r.wake = sync.NewCond(&r.mu)
	go r.run()
	return r
}

// Add starts copying src, the read end of a child's pipe (from os.Pipe,
// so that Close can interrupt a read), and returns its Source. The relay
// owns src from now on and closes it at its end: EOF, a read error, or
// Close. A last line without a newline is relayed as it is, with no
// newline added (see Source). Add after Close closes src at once.
func (r *Relay) Add(src *os.File) *Source {
	s := &Source{relay: r, src: src, done: make(chan struct{})}
	r.mu.Lock()
	closing := r.closing
	if !closing {
		r.sources = append(r.sources, s)
	}
	r.mu.Unlock()
	if closing {
		src.Close()
		close(s.done)
		return s
	}
	go s.run()
	return s
}

// Dropped returns how many lines were dropped since New: those that did not
// fit in the queue, and those whose write failed (EPIPE: the reader is
// gone). A line longer than MaxLine counts as the lines it is split into.
func (r *Relay) Dropped() uint64 { return r.total.Load() }

// Close waits, for at most timeout in all, until every source has ended
// and every queued line is written; then it stops the relay. Sources still
// open at the deadline (a child's child holding the pipe) are closed and
// their unread lines lost; lines still queued then (a stalled reader) are
// lost too, and the writer goroutine may stay blocked in its write until
// the process exits. A report of dropped lines still owed is tried once,
// last. Lines that sources still read after that are dropped.
func (r *Relay) Close(timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	r.mu.Lock()
	r.closing = true
	running := append([]*Source(nil), r.sources...)
	r.mu.Unlock()
	late := false
	for _, s := range running {
		if !late {
			select {
			case <-s.done:
				continue
			case <-deadline.C:
				late = true
			}
		}
		s.src.Close() // interrupts its read; it ends on its own
	}
	r.mu.Lock()
	r.closed = true
	r.wake.Broadcast()
	r.mu.Unlock()
	if !late {
		select {
		case <-r.stopped:
		case <-deadline.C:
		}
	}
}

// ended forgets s, which has read its last line.
func (r *Relay) ended(s *Source) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, o := range r.sources {
		if o == s {
			r.sources = append(r.sources[:i], r.sources[i+1:]...)
			break
		}
	}
}

// lose counts n lines dropped, for Dropped and for the next report.
func (r *Relay) lose(n uint64) {
	if n > 0 {
		r.total.Add(n)
		r.unreported.Add(n)
	}
}
