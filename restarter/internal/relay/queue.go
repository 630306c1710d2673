package relay

import "bytes"

// ring is the relay's queue: one array, allocated once, that readers
// append lines to and the writer takes them from, in order. A line never
// wraps around the array's end (a bip buffer): when it does not fit before
// the end, it goes at the start and the end is skipped, so the writer
// writes every line from one slice, in one write.
type ring struct {
	buf     []byte
	head    int  // where the next line goes
	tail    int  // the oldest byte not yet written
	wrapEnd int  // when wrapped: the end of the older bytes
	wrapped bool // the bytes run from tail to wrapEnd, then from 0 to head
	used    int  // bytes queued; 0 means head == tail == 0
}

// room returns where to put n bytes, and how many fit there in one piece
// (fewer than n when the ring is too full).
func (q *ring) room(n int) (at, size int) {
	end := len(q.buf) - q.head
	switch {
	case q.used == 0:
		return 0, len(q.buf)
	case q.wrapped:
		return q.head, q.tail - q.head
	case end >= n || end >= q.tail:
		return q.head, end
	}
	return 0, q.tail // wrap around: the start has more room
}

// put queues p at at, which room returned, then a newline if addNewline.
func (q *ring) put(at int, p []byte, addNewline bool) {
	if at != q.head { // at is 0: wrap around
		q.wrapEnd, q.wrapped = q.head, true
	}
	n := copy(q.buf[at:], p)
	if addNewline {
		q.buf[at+n] = '\n'
		n++
	}
	q.head = at + n
	q.used += n
}

// next returns the oldest queued bytes that lie in one piece.
func (q *ring) next() []byte {
	if q.wrapped {
		return q.buf[q.tail:q.wrapEnd]
	}
	return q.buf[q.tail:q.head]
}

// take frees the first n bytes of next.
func (q *ring) take(n int) {
	q.tail += n
	q.used -= n
	if q.wrapped && q.tail == q.wrapEnd {
		q.tail, q.wrapped = 0, false
	}
	if q.used == 0 {
		q.head, q.tail, q.wrapped = 0, 0, false
	}
}

// lineEnd says how the bytes a reader queues end.
type lineEnd int

const (
	newlines    lineEnd = iota // whole lines, each with its newline
	cutLong                    // the first part of a line longer than MaxLine: add a newline
	partialLast                // a source's last line, with no newline, at EOF
)

// put queues the lines in p, as many whole lines as fit; it drops and
// counts the rest. It never waits for the writer.
func (r *Relay) put(p []byte, end lineEnd) {
	size := len(p)
	if end == cutLong {
		size++
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	at, room := r.q.room(size)
	fit := len(p)
	switch {
	case r.closed:
		fit = 0
	case room >= size:
	case end == newlines:
		fit = bytes.LastIndexByte(p[:room], '\n') + 1
	default:
		fit = 0
	}
	r.lose(countLines(p[fit:]))
	if fit == 0 {
		return
	}
	r.q.put(at, p[:fit], end == cutLong)
	r.in += uint64(fit)
	if end == cutLong {
		r.in++
	}
	if end == partialLast {
		r.partialEnds = append(r.partialEnds, r.in)
	}
	r.wake.Signal()
}

// nextChunk returns what the writer writes next: whole lines, at most
// atomicWrite bytes of them unless the first is longer, and never past a
// partial last line (so that it can be told from what follows it).
func (r *Relay) nextChunk() []byte {
	p := r.q.next()
	if len(r.partialEnds) > 0 {
		if end := r.partialEnds[0] - r.out; end <= uint64(len(p)) {
			p = p[:end]
		}
	}
	if len(p) <= atomicWrite {
		return p
	}
	if i := bytes.LastIndexByte(p[:atomicWrite], '\n'); i >= 0 {
		return p[:i+1]
	}
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		return p[:i+1]
	}
	return p
}

// taken frees the n bytes the writer took, written or lost.
func (r *Relay) taken(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.q.take(n)
	r.out += uint64(n)
	if len(r.partialEnds) > 0 && r.partialEnds[0] <= r.out {
		r.partialEnds = r.partialEnds[1:]
	}
}

// countLines counts the lines in p: its newlines, and one more if it ends
// without one (a partial last line).
func countLines(p []byte) uint64 {
	if len(p) == 0 {
		return 0
	}
	n := uint64(bytes.Count(p, []byte{'\n'}))
	if p[len(p)-1] != '\n' {
		n++
	}
	return n
}
