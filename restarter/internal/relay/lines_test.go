package relay

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// relayOne relays what a child writes, in writes of step bytes, to a
// destination that takes everything, and returns what came out.
func relayOne(t *testing.T, written []byte, step int) string {
	t.Helper()
	dst := &lockedBuffer{}
	r := New(dst, 1<<20, report)
	pr, pw := childPipe(t)
	s := r.Add(pr)
	go func() {
		defer pw.Close()
		for p := written; len(p) > 0; p = p[min(step, len(p)):] {
			if _, err := pw.Write(p[:min(step, len(p))]); err != nil {
				return
			}
		}
	}()
	waitDone(t, s)
	within(t, "Close", func() { r.Close(bound) })
	require.Zero(t, r.Dropped())
	return dst.String()
}

// pattern returns n bytes of a pattern that shows where a cut falls.
func pattern(n int) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b strings.Builder
	for i := range n {
		b.WriteByte(digits[i%len(digits)])
	}
	return b.String()
}

func TestLongAndOddLinesComeOutExactlyAsShown(t *testing.T) {
	long := pattern(100 << 10)         // 100 KiB, then its newline
	fits := pattern(MaxLine - 1)       // with its newline, MaxLine bytes
	oneOver := pattern(MaxLine) + "\n" // one byte too long
	written := "plain\n" +
		"crlf\r\n" +
		"bare\rreturn\n" +
		"\x00\xff\xfe binary \x1b[31mred\x1b[0m\ttab\n" +
		"\n" +
		fits + "\n" +
		oneOver +
		long + "\n" +
		"the last line, with no newline"

	// Lines up to MaxLine bytes, newline included, come out unchanged;
	// longer ones as lines of MaxLine bytes, the relay adding the newline;
	// the last line has no newline added.
	want := "plain\n" +
		"crlf\r\n" +
		"bare\rreturn\n" +
		"\x00\xff\xfe binary \x1b[31mred\x1b[0m\ttab\n" +
		"\n" +
		fits + "\n" +
		oneOver[:MaxLine-1] + "\n" + oneOver[MaxLine-1:] +
		long[:MaxLine-1] + "\n" + long[MaxLine-1:] + "\n" +
		"the last line, with no newline"
	for _, step := range []int{1 << 20, 4096, 1000, 7} {
		got := relayOne(t, []byte(written), step)
		require.True(t, got == want, "writes of %d bytes: got %d bytes, want %d; first difference at %d",
			step, len(got), len(want), firstDifference(got, want))
	}
}

func firstDifference(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestAPartialLastLineIsFlushedAtEOF(t *testing.T) {
	// A lone child's last line comes out byte for byte, no newline added
	// (as Envoy's --hot-restart-version prints it).
	require.Equal(t, "first\n11.104", relayOne(t, []byte("first\n11.104"), 4096))

	// A line relayed after it, from another child, starts a line of its
	// own, even when both wait in the queue (the reader stalled).
	dst := newGate(t)
	r := New(dst, DefaultBuffered, report)
	for _, out := range []string{"a1\na2, the last", "b1\n"} {
		pr, pw := childPipe(t)
		s := r.Add(pr)
		_, err := pw.Write([]byte(out))
		require.NoError(t, err)
		pw.Close()
		waitDone(t, s)
	}
	dst.release()
	within(t, "Close", func() { r.Close(bound) })
	require.Equal(t, "a1\na2, the last\nb1\n", dst.String())
}

func TestRingNeverWrapsALine(t *testing.T) {
	q := ring{buf: make([]byte, 10)}
	put := func(s string) {
		at, size := q.room(len(s))
		require.GreaterOrEqual(t, size, len(s), "room for %q", s)
		q.put(at, []byte(s), false)
	}
	put("abcd")
	put("efgh")
	at, size := q.room(4)
	require.Equal(t, []int{8, 2}, []int{at, size}, "full but for the end")
	q.take(4) // "abcd" written

	put("ijkl") // 2 bytes left at the end: it goes at the start, whole
	require.Equal(t, "efgh", string(q.next()), "the older bytes first, up to where they end")
	at, size = q.room(1)
	require.Equal(t, []int{4, 0}, []int{at, size}, "full: no room between head and tail")
	q.take(4)
	require.Equal(t, "ijkl", string(q.next()))
	q.take(4)
	at, size = q.room(10)
	require.Equal(t, []int{0, 10}, []int{at, size}, "empty: all of it")
}

func TestCountLines(t *testing.T) {
	for p, want := range map[string]uint64{"": 0, "a": 1, "a\n": 1, "a\nb": 2, "\n\n": 2} {
		require.Equal(t, want, countLines([]byte(p)), "%q", p)
	}
	require.Equal(t, "b\n", string(unwritten([]byte("a\nb\n"), 3)), "a line half written is lost")
	require.Equal(t, "b\n", string(unwritten([]byte("a\nb\n"), 2)))
	require.Equal(t, "a\nb\n", string(unwritten([]byte("a\nb\n"), 0)))
	require.Empty(t, unwritten([]byte("a\n"), 2), "all written")
}
