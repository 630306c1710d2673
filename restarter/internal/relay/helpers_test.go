package relay

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// bound is how long a test waits for something that must happen: far more
// than it takes, so that only a hang (the bug) reaches it.
const bound = 30 * time.Second

// report is the tests' dropped-lines report.
func report(n uint64) []byte { return []byte("dropped " + strconv.FormatUint(n, 10) + "\n") }

// childPipe returns a pipe as a child gets it: the relay reads r, the
// child writes w. Both are closed at the test's end.
func childPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// lockedBuffer is a destination that takes everything at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// gateWriter blocks every write until open is closed, as a pipe nobody
// reads does once full.
type gateWriter struct {
	open chan struct{}
	lockedBuffer
}

func newGate(t *testing.T) *gateWriter {
	g := &gateWriter{open: make(chan struct{})}
	t.Cleanup(g.release) // never leave the writer goroutine blocked
	return g
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.open
	return g.lockedBuffer.Write(p)
}

func (g *gateWriter) release() {
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// waitDone waits for s to end.
func waitDone(t *testing.T, s *Source) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(bound):
		t.Fatal("the source did not end at EOF")
	}
}

// within fails the test if f does not return within bound.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatalf("%s blocked", what)
	}
}

// logLine is the seq'th line from source src, in Envoy's format, padded
// to width bytes (newline included) so that a mixed or cut line shows.
func logLine(src, seq, width int) []byte {
	line := fmt.Appendf(nil, "[2026-11-24 19:20:00.123][%d][info][main] src=%d seq=%d ", 1000+src, src, seq)
	for len(line) < width-1 {
		line = append(line, byte('a'+src))
	}
	return append(line, '\n')
}
