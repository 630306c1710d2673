package logging

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// gateWriter blocks every Write until open is closed, as a full pipe does.
type gateWriter struct {
	open chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gateWriter) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

func TestLineWriterNeverBlocksAndCountsWhatItDrops(t *testing.T) {
	g := &gateWriter{open: make(chan struct{})}
	lw := newWriter(g, func(n int) []byte { return []byte("dropped " + strconv.Itoa(n) + "\n") })
	// Given a stalled reader, many more lines than fit are written at once,
	done := make(chan struct{})
	go func() {
		for i := range 1000 {
			lw.Write([]byte("line " + strconv.Itoa(i) + "\n"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Write blocked on a stalled reader")
	}
	lw.Flush(10 * time.Millisecond) // bounded: returns with the reader still stalled

	// when the reader is back, it gets the lines kept, in order, and the
	// count of those dropped, once: together, every line written.
	close(g.open)
	lw.Flush(10 * time.Second)
	lw.Write([]byte("after\n"))
	lw.Flush(10 * time.Second)
	lines := strings.Split(strings.TrimSuffix(g.String(), "\n"), "\n")
	require.Equal(t, "after", lines[len(lines)-1])
	last, kept, dropped, reports := -1, 0, 0, 0
	for _, l := range lines[:len(lines)-1] {
		if n, ok := strings.CutPrefix(l, "dropped "); ok {
			dropped, _ = strconv.Atoi(n)
			reports++
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(l, "line "))
		require.NoError(t, err, l)
		require.Greater(t, n, last, "lines in order")
		last = n
		kept++
	}
	require.Equal(t, 1, reports, "the count is reported once")
	require.LessOrEqual(t, kept, maxPendingLines+1, "no more kept than the queue holds, plus the one in flight")
	require.Equal(t, 1000, kept+dropped)
}

// flakyWriter fails its first writes, as a pipe whose reader is gone does
// until a new reader takes over.
type flakyWriter struct {
	fails int
	buf   bytes.Buffer
}

func (f *flakyWriter) Write(p []byte) (int, error) {
	if f.fails > 0 {
		f.fails--
		return 0, syscall.EPIPE
	}
	return f.buf.Write(p)
}

func TestLineWriterCountsLinesLostToEPIPE(t *testing.T) {
	f := &flakyWriter{fails: 3}
	lw := newWriter(f, func(n int) []byte { return []byte("dropped " + strconv.Itoa(n) + "\n") })
	for i := range 5 {
		lw.Write([]byte("line " + strconv.Itoa(i) + "\n"))
		lw.Flush(10 * time.Second) // one at a time: each meets the writer's state in turn
	}
	require.Equal(t, "line 3\ndropped 3\nline 4\n", f.buf.String())
}

func TestEscapeControl(t *testing.T) {
	require.Equal(t, "plain", EscapeControl("plain"))
	require.Equal(t, `a\nb\r\x1b[31m`, EscapeControl("a\nb\r\x1b[31m"))
	require.Equal(t, "tab\tkept", EscapeControl("tab\tkept"))
	// DEL, C1 controls (U+009B is CSI to an 8-bit terminal) and a byte that
	// is not UTF-8 are escaped too; other characters are kept.
	require.Equal(t, `del\x7f csi\u009b2J raw\x9b héllo`, EscapeControl("del\x7f csi\u009b2J raw\x9b héllo"))
}

// scriptedWriter fails the writes whose index (from 0) fails says, as a
// pipe does while its reader is gone, and keeps what the others write.
type scriptedWriter struct {
	fails []bool
	n     int
	buf   bytes.Buffer
}

func (s *scriptedWriter) Write(p []byte) (int, error) {
	i := s.n
	s.n++
	if i < len(s.fails) && s.fails[i] {
		return 0, syscall.EPIPE
	}
	return s.buf.Write(p)
}

func TestLineWriterReportsAgainWhenTheReportItselfIsLost(t *testing.T) {
	// Given a reader that goes away for two lines, comes back for one, and
	// goes away again just as the report of the lines lost is written,
	s := &scriptedWriter{fails: []bool{true, true, false, true}}
	lw := newWriter(s, func(n int) []byte { return []byte("dropped " + strconv.Itoa(n) + "\n") })
	for i := range 4 {
		lw.Write([]byte("line " + strconv.Itoa(i) + "\n"))
		lw.Flush(10 * time.Second) // one at a time: each meets the writer's state in turn
	}
	// then the count is not lost with the report: it comes after the next
	// line that gets through.
	require.Equal(t, "line 2\nline 3\ndropped 2\n", s.buf.String())
}

func TestFlushGivesUpOnAStalledReaderAfterItsTimeout(t *testing.T) {
	// Given a reader that does not read,
	g := &gateWriter{open: make(chan struct{})}
	lw := newWriter(g, func(n int) []byte { return []byte("dropped " + strconv.Itoa(n) + "\n") })
	lw.Write([]byte("stuck\n"))

	// when the restarter flushes its log before exiting, Flush waits for
	// the line as long as its timeout, and no longer.
	const timeout = 50 * time.Millisecond
	start := time.Now()
	returned := make(chan time.Duration)
	go func() {
		lw.Flush(timeout)
		returned <- time.Since(start)
	}()
	select {
	case waited := <-returned:
		require.GreaterOrEqual(t, waited, timeout)
	case <-time.After(10 * time.Second):
		t.Fatal("Flush did not return on a stalled reader")
	}

	// Once the reader is back, the line is written all the same.
	close(g.open)
	lw.Flush(10 * time.Second)
	require.Equal(t, "stuck\n", g.String())
}

func TestAsyncLoggerReportsWhatItDroppedInItsOwnFormat(t *testing.T) {
	for _, format := range []Format{Text, JSON} {
		// Given the restarter's logger writing to a reader that stalls,
		g := &gateWriter{open: make(chan struct{})}
		log, lw := NewAsync(g, format)

		// when more lines are logged than the queue holds, and the reader
		// comes back,
		const logged = maxPendingLines + 50
		for i := range logged {
			log.Info("line " + strconv.Itoa(i))
		}
		close(g.open)
		lw.Flush(10 * time.Second)

		// then one warning, in the logger's format, counts the lines that
		// are missing.
		lines := strings.Split(strings.TrimSuffix(g.String(), "\n"), "\n")
		var kept, reports int
		for _, l := range lines {
			if !strings.Contains(l, "dropped") {
				kept++
				continue
			}
			reports++
			dropped := strconv.Itoa(logged - (len(lines) - 1))
			if format == JSON {
				var r map[string]any
				require.NoError(t, json.Unmarshal([]byte(l), &r), l)
				require.Equal(t, "WARN", r["level"])
				require.Equal(t, "restarter", r["component"])
				require.Equal(t, dropped, strconv.Itoa(int(r["dropped"].(float64))))
			} else {
				require.Regexp(t, `^\[[^]]+\]\[\d+\]\[warning\]\[restarter\] `, l)
				require.Contains(t, l, " "+dropped+" ")
			}
		}
		require.Equal(t, 1, reports, "format %d: %q", format, lines)
		require.Less(t, kept, logged)
	}
}
