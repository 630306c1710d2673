package relay

import "bytes"

var newline = []byte{'\n'}

// run is the writer goroutine: it writes the queue to the destination
// until Close, and is the only one that writes to it.
func (r *Relay) run() {
	defer close(r.stopped)
	for {
		chunk, ok := r.wait()
		if !ok {
			break
		}
		r.write(chunk)
		r.taken(len(chunk))
	}
	r.report() // a report still owed: the last chance is now
}

// wait returns the next chunk to write once there is one, or false once
// the relay is closed and nothing is left.
func (r *Relay) wait() ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.q.used == 0 {
		if r.closed {
			return nil, false
		}
		r.wake.Wait()
	}
	return r.nextChunk(), true
}

// write writes chunk, after the report of lines dropped before it, if any.
// What the destination does not take is dropped and counted: while the
// report cannot be written, the reader is gone, and the chunk is not tried.
func (r *Relay) write(chunk []byte) {
	if !r.report() {
		r.lose(countLines(chunk))
		return
	}
	if n, err := r.emit(chunk); err != nil {
		r.lose(countLines(unwritten(chunk, n)))
	}
}

// report writes the report of the lines dropped since the last one, if
// any; false if that write failed.
func (r *Relay) report() bool {
	n := r.unreported.Swap(0)
	if n == 0 {
		return true
	}
	if _, err := r.emit(r.dropped(n)); err != nil {
		r.unreported.Add(n)
		return false
	}
	return true
}

// emit writes p to the destination, first ending a partial last line that
// was written before it, so that p starts a line of its own. A partial last
// line written last of all is left as it is: a lone child's output comes
// out byte for byte.
func (r *Relay) emit(p []byte) (int, error) {
	if r.midLine {
		if _, err := r.dst.Write(newline); err != nil {
			return 0, err
		}
		r.midLine = false
	}
	n, err := r.dst.Write(p)
	if n > 0 {
		r.midLine = p[n-1] != '\n'
	}
	return n, err
}

// unwritten returns the lines of chunk that were not written whole, when
// only its first n bytes were.
func unwritten(chunk []byte, n int) []byte {
	return chunk[bytes.LastIndexByte(chunk[:n], '\n')+1:]
}
