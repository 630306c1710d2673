package relay

import (
	"bytes"
	"io"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// relayed is what a test reads back: the lines kept of each source, in
// the order written, and the reports.
type relayed struct {
	seqs    map[int][]int
	reports []uint64
}

var srcSeq = regexp.MustCompile(`\]\[info\]\[main\] src=(\d+) seq=(\d+) `)

// parse checks that out is whole lines, each a report or exactly the line
// logLine(src, seq, width(src, seq)) made, and returns them.
func parse(t *testing.T, out []byte, width func(src, seq int) int) relayed {
	t.Helper()
	got := relayed{seqs: map[int][]int{}}
	require.True(t, len(out) == 0 || out[len(out)-1] == '\n', "ends with a whole line")
	for line := range bytes.Lines(out) {
		if n, ok := bytes.CutPrefix(line, []byte("dropped ")); ok {
			count, err := strconv.ParseUint(string(bytes.TrimSuffix(n, []byte("\n"))), 10, 64)
			require.NoError(t, err, "%q", line)
			got.reports = append(got.reports, count)
			continue
		}
		m := srcSeq.FindSubmatch(line)
		require.NotNil(t, m, "a mixed or cut line: %.200q", line)
		src, _ := strconv.Atoi(string(m[1]))
		seq, _ := strconv.Atoi(string(m[2]))
		require.Equal(t, string(logLine(src, seq, width(src, seq))), string(line), "byte for byte")
		got.seqs[src] = append(got.seqs[src], seq)
	}
	return got
}

// requireAccounted checks each source's lines came in order, and that the
// lines kept and the lines reported dropped make every line written.
func requireAccounted(t *testing.T, got relayed, written map[int]int, r *Relay) {
	t.Helper()
	kept, reported := 0, uint64(0)
	for src, seqs := range got.seqs {
		for i := 1; i < len(seqs); i++ {
			require.Greater(t, seqs[i], seqs[i-1], "source %d in order", src)
		}
		kept += len(seqs)
	}
	for _, n := range got.reports {
		reported += n
	}
	total := 0
	for _, n := range written {
		total += n
	}
	require.Equal(t, r.Dropped(), reported, "every drop reported")
	require.Equal(t, total, kept+int(reported), "every line kept or counted")
}

func TestStalledReaderNeverBlocksAChild(t *testing.T) {
	// Given: the relay's destination is a pipe nobody reads (the log
	// reader stalled), and three children write into their pipes, one of
	// them 10 MB, one write per line as Envoy does.
	readEnd, dst := childPipe(t)
	r := New(dst, DefaultBuffered, report)
	lines := map[int]int{0: 10 << 20 / 150, 1: 1 << 20 / 150, 2: 1 << 20 / 150}
	var children sync.WaitGroup
	sources := make([]*Source, 0, len(lines))
	for src, n := range lines {
		pr, pw := childPipe(t)
		sources = append(sources, r.Add(pr))
		children.Add(1)
		go func() {
			defer children.Done()
			defer pw.Close()
			for seq := range n {
				_, err := pw.Write(logLine(src, seq, 150))
				require.NoError(t, err)
			}
		}()
	}

	// When: every child finishes writing: it never waits for the reader.
	within(t, "a child writing into its pipe", children.Wait)
	for _, s := range sources {
		waitDone(t, s)
	}
	require.NotZero(t, r.Dropped(), "10 MB does not fit: lines were dropped")

	// Then: the reader, back, gets whole lines, each source's in order, and
	// one report of the lines it missed: together, every line written.
	out := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(readEnd)
		out <- b
	}()
	within(t, "Close", func() { r.Close(bound) })
	dst.Close()
	got := parse(t, <-out, func(int, int) int { return 150 })
	require.Len(t, got.reports, 1, "reported once")
	requireAccounted(t, got, lines, r)
}

// scriptedWriter hands each write to the test, which answers it: the
// destination's every move is the test's.
type scriptedWriter struct {
	calls   chan string
	replies chan error
}

func (w *scriptedWriter) Write(p []byte) (int, error) {
	w.calls <- string(p)
	if err := <-w.replies; err != nil {
		return 0, err
	}
	return len(p), nil
}

// expect waits for the relay's next write, checks it and answers it.
func (w *scriptedWriter) expect(t *testing.T, want string, reply error) {
	t.Helper()
	select {
	case got := <-w.calls:
		require.Equal(t, want, got)
		w.replies <- reply
	case <-time.After(bound):
		t.Fatalf("no write; want %q", want)
	}
}

func TestLinesLostToEPIPEAreReportedFirstWhenTheReaderIsBack(t *testing.T) {
	dst := &scriptedWriter{calls: make(chan string), replies: make(chan error)}
	r := New(dst, DefaultBuffered, report)
	pr, child := childPipe(t)
	s := r.Add(pr)
	say := func(line string) {
		_, err := child.Write([]byte(line))
		require.NoError(t, err)
	}

	// Given: the reader is gone (EPIPE) for a line and two more reports.
	say("line 0\n")
	dst.expect(t, "line 0\n", syscall.EPIPE)
	say("line 1\n")
	dst.expect(t, "dropped 1\n", syscall.EPIPE) // tried first; the line is not
	say("line 2\n")
	dst.expect(t, "dropped 2\n", syscall.EPIPE)

	// When: a reader is back, the report comes first, then the lines.
	say("line 3\n")
	dst.expect(t, "dropped 3\n", nil)
	dst.expect(t, "line 3\n", nil)
	say("line 4\n")
	dst.expect(t, "line 4\n", nil)
	require.Equal(t, uint64(3), r.Dropped())

	// Then: a report still owed when the sources end is tried at Close.
	say("line 5\n")
	dst.expect(t, "line 5\n", syscall.EPIPE)
	child.Close()
	waitDone(t, s)
	closed := make(chan struct{})
	go func() {
		r.Close(bound)
		close(closed)
	}()
	dst.expect(t, "dropped 1\n", nil)
	<-closed
	require.Equal(t, uint64(4), r.Dropped())
}

func TestConcurrentSourcesNeverMixWithinALine(t *testing.T) {
	// Given: four children writing lines of 60 bytes to 9 KiB (longer than
	// a pipe's atomic write) at once, into a queue of one long line.
	width := func(src, seq int) int { return 60 + (seq*7919+src*104729)%(9<<10) }
	dst := &sizesWriter{}
	r := New(dst, MaxLine, report)
	written := map[int]int{0: 1500, 1: 1500, 2: 1500, 3: 1500}
	var children sync.WaitGroup
	for src, n := range written {
		pr, pw := childPipe(t)
		r.Add(pr)
		children.Add(1)
		go func() {
			defer children.Done()
			defer pw.Close()
			for seq := range n {
				_, err := pw.Write(logLine(src, seq, width(src, seq)))
				require.NoError(t, err)
			}
		}()
	}
	within(t, "the children", children.Wait)
	within(t, "Close", func() { r.Close(bound) })

	// Then: lines are whole and byte for byte, each source's in order,
	// and what was dropped (if the writer fell behind) is counted.
	got := parse(t, []byte(dst.String()), width)
	requireAccounted(t, got, written, r)

	// and no write is longer than a pipe writes at once (so the
	// restarter's own log lines cannot land inside one) unless it is one
	// line.
	for _, w := range dst.writes {
		if len(w) > atomicWrite {
			require.Equal(t, 1, bytes.Count(w, []byte("\n")), "a write of %d bytes", len(w))
		}
	}
}

// sizesWriter keeps each write apart.
type sizesWriter struct {
	lockedBuffer
	writes [][]byte
}

func (w *sizesWriter) Write(p []byte) (int, error) {
	w.lockedBuffer.mu.Lock()
	w.writes = append(w.writes, bytes.Clone(p))
	w.lockedBuffer.mu.Unlock()
	return w.lockedBuffer.Write(p)
}

func TestCloseIsBoundedWhenAChildsChildHoldsThePipeAndTheReaderStalls(t *testing.T) {
	// Given: the destination never takes a byte, and the pipe's write end
	// stays open (a process the child started holds it).
	dst := newGate(t)
	r := New(dst, DefaultBuffered, report)
	pr, held := childPipe(t)
	s := r.Add(pr)
	_, err := held.Write([]byte("queued, never written\n"))
	require.NoError(t, err)

	// When: Close gives them a short while, it returns, and the source
	// has ended.
	within(t, "Close", func() { r.Close(50 * time.Millisecond) })
	waitDone(t, s)

	// Then: a source added after Close ends at once, its pipe closed.
	pr2, w2 := childPipe(t)
	late := r.Add(pr2)
	waitDone(t, late)
	_, err = w2.Write([]byte("x\n"))
	require.ErrorIs(t, err, syscall.EPIPE, "the read end is closed")
}

func TestAReportIsNeverJoinedToAPartialLastLine(t *testing.T) {
	dst := &scriptedWriter{calls: make(chan string), replies: make(chan error)}
	r := New(dst, DefaultBuffered, report)
	pr, child := childPipe(t)
	s := r.Add(pr)
	_, err := child.Write([]byte("no newline"))
	require.NoError(t, err)
	child.Close()
	dst.expect(t, "no newline", nil)
	waitDone(t, s)

	pr2, child2 := childPipe(t)
	r.Add(pr2)
	_, err = child2.Write([]byte("lost\n"))
	require.NoError(t, err)
	dst.expect(t, "\n", syscall.EPIPE) // the newline that would end it
	_, err = child2.Write([]byte("next\n"))
	require.NoError(t, err)
	dst.expect(t, "\n", nil)
	dst.expect(t, "dropped 1\n", nil)
	dst.expect(t, "next\n", nil)
	child2.Close()
	within(t, "Close", func() { r.Close(bound) })
}
