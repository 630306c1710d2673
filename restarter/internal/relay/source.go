package relay

import (
	"bytes"
	"os"
	"slices"
	"sync"
	"unicode/utf8"
)

const (
	// MaxErrorLines is how many error lines a Source keeps: the last ones.
	MaxErrorLines = 8
	// MaxErrorLine is how many bytes of an error line a Source keeps; a
	// longer one is cut (at a character's start) and ends in "...".
	MaxErrorLine = 1024

	// firstRead is a source's read buffer at first; it grows to MaxLine
	// for a line that does not fit.
	firstRead = 16 << 10
	// levelWithin is how far into a line Envoy's level field can be:
	// "[2026-11-24 19:20:00.123][thread id][critical][" is about 60 bytes.
	levelWithin = 96
)

var errorLevels = [][]byte{[]byte("][error]["), []byte("][critical][")}

// A Source is one child's pipe, read until EOF. Its last line, if it has
// no newline, is relayed as it is: a child's output is relayed byte for
// byte (Envoy's --hot-restart-version prints no newline). Should anything
// be written after it (another source's line, a report), the relay writes
// a newline first, so that no line ever joins it.
type Source struct {
	relay *Relay
	src   *os.File
	done  chan struct{}

	mu     sync.Mutex
	errors []string // the last error and critical lines, oldest first

	cont bool // the reader's: the next bytes continue a line cut at MaxLine
}

// Done is closed once the source has ended (EOF, a read error, or Close)
// and its lines are queued or dropped; LastErrors is final then. Close
// waits for the queued lines to be written.
func (s *Source) Done() <-chan struct{} { return s.done }

// LastErrors returns the last MaxErrorLines lines, oldest first, that look
// like Envoy's error or critical log lines ("[2026-11-24 19:20:00.123][7][critical][main] ..."),
// each without its line ending and cut to MaxErrorLine bytes. Lines
// dropped for a stalled reader count too: they are the reasons a failed
// start gives.
func (s *Source) LastErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errors)
}

// run is the source's reader goroutine. It reads into a buffer of its own
// and queues the whole lines it holds after each read; it never waits for
// the destination.
func (s *Source) run() {
	defer close(s.done)
	defer s.relay.ended(s)
	defer s.src.Close()
	buf := make([]byte, firstRead)
	n := 0 // bytes of an unfinished line at buf's start
	for {
		m, err := s.src.Read(buf[n:])
		n = s.queue(buf[:n+m])
		if err != nil {
			break
		}
		if n == len(buf) { // one line fills it, and is shorter than MaxLine
			buf = append(make([]byte, 0, MaxLine), buf...)[:MaxLine]
		}
	}
	if n > 0 {
		s.scan(buf[:n])
		s.relay.put(buf[:n], partialLast)
	}
}

// queue queues the whole lines at p's start, and returns the length of
// the unfinished line left, now at p's start. A line of MaxLine bytes with
// no newline yet is cut: its first MaxLine-1 bytes go as a line of their
// own.
func (s *Source) queue(p []byte) int {
	i := bytes.LastIndexByte(p, '\n')
	if i < 0 && len(p) < MaxLine {
		return len(p)
	}
	if i < 0 {
		s.scan(p[:MaxLine-1])
		s.relay.put(p[:MaxLine-1], cutLong)
		s.cont = true
		return copy(p, p[MaxLine-1:])
	}
	s.scan(p[:i+1])
	s.relay.put(p[:i+1], newlines)
	s.cont = false
	return copy(p, p[i+1:])
}

// scan keeps the error lines in p, whole lines but for a partial last one.
func (s *Source) scan(p []byte) {
	continued := s.cont
	for len(p) > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		if !continued && isErrorLine(line) {
			s.keep(line)
		}
		continued = false
	}
}

// isErrorLine reports a line in Envoy's log format at level error or
// critical.
func isErrorLine(line []byte) bool {
	if len(line) == 0 || line[0] != '[' {
		return false
	}
	head := line[:min(len(line), levelWithin)]
	for _, level := range errorLevels {
		if bytes.Contains(head, level) {
			return true
		}
	}
	return false
}

// keep adds line to the last error lines, cut to MaxErrorLine bytes.
func (s *Source) keep(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	text := ""
	if len(line) > MaxErrorLine {
		cut := MaxErrorLine
		for cut > MaxErrorLine-utf8.UTFMax && !utf8.RuneStart(line[cut]) {
			cut--
		}
		text = string(line[:cut]) + "..."
	} else {
		text = string(line)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errors) == MaxErrorLines {
		s.errors = append(s.errors[:0], s.errors[1:]...)
	}
	s.errors = append(s.errors, text)
}
