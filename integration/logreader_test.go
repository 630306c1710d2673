package integration

import (
	"bufio"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// quietBody runs every epoch with its output in a file of its own, so that
// only the restarter writes to the log reader under test.
const quietBody = `exec >>"$DIR/epoch.$RESTART_EPOCH.log" 2>&1
fakeenvoy --base-id "$BASE_ID"
`

// startTo runs the restarter with flags on the sandbox's start script, its
// stdout and stderr going to out (a pipe or FIFO the test controls).
func (sb *sandbox) startTo(out *os.File, flags ...string) *proctest.Proc {
	sb.t.Helper()
	sb.restarter = proctest.Start(sb.t, proctest.Options{Dir: sb.Dir, Stdout: out}, proctest.Binary(sb.t, "restarter"), append(flags, sb.script)...)
	return sb.restarter
}

// waitStateLive waits for epoch n's state file to say LIVE (for scenarios
// whose restarter log the test cannot read) and returns its state.
func (sb *sandbox) waitStateLive(n int) state {
	sb.t.Helper()
	var st state
	proctest.WaitFor(sb.t, wait, "epoch "+strconv.Itoa(n)+" LIVE", func() bool {
		b, err := os.ReadFile(sb.Path("state." + strconv.Itoa(n) + ".json"))
		if err != nil {
			return false
		}
		st = state{}
		return json.Unmarshal(b, &st) == nil && st.State == "LIVE"
	})
	return st
}

// countIn counts the lines of file matching re.
func countIn(file, re string) int {
	b, _ := os.ReadFile(file)
	return len(regexp.MustCompile(`(?m)`+re).FindAllIndex(b, -1))
}

// lineReader reads lines from f in the background and hands them out.
func lineReader(f *os.File) <-chan string {
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

// waitFor reads lines until one matches re, and returns it.
func waitFor(t *testing.T, lines <-chan string, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(wait)
	for {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "log ended before a line matching %q", re)
			if rx.MatchString(l) {
				return l
			}
		case <-deadline:
			t.Fatalf("timed out waiting for a log line matching %q", re)
		}
	}
}

// Issue 14, defect 1: a log reader that goes away (`restarter ... | head -1`,
// a FIFO whose reader dies, a restarting `| logger`) must not kill the
// restarter with SIGPIPE, and through PDEATHSIG every epoch, even when the
// restarter was started with SIGPIPE ignored, as systemd does.
func TestDeadLogReaderKillsNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fifo   bool
		ignore bool // start the restarter with SIGPIPE ignored
	}{
		{name: "pipe"},
		{name: "pipe, SIGPIPE ignored", ignore: true},
		{name: "fifo", fifo: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Every epoch writes to the same broken pipe; Envoy, like
			// fakeenvoy, ignores SIGPIPE.
			sb := newSandbox(t, "")
			var r, w *os.File
			var err error
			if tc.fifo {
				fifo := sb.Path("log.fifo")
				require.NoError(t, unix.Mkfifo(fifo, 0o600))
				r, err = os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
				require.NoError(t, err)
				w, err = os.OpenFile(fifo, os.O_WRONLY, 0)
			} else {
				r, w, err = os.Pipe()
			}
			require.NoError(t, err)
			// Given a restarter whose log reader reads one line and goes away,
			var p *proctest.Proc
			if tc.ignore {
				sh := sb.writeScript("ignore-sigpipe.sh", `trap '' PIPE
exec "$@"
`)
				p = proctest.Start(t, proctest.Options{Dir: sb.Dir, Stdout: w}, sh, proctest.Binary(t, "restarter"), sb.script)
			} else {
				p = sb.startTo(w)
			}
			w.Close()
			first, err := bufio.NewReader(r).ReadString('\n')
			require.NoError(t, err)
			require.Contains(t, first, "starting hot-restarter with target: ")
			require.NoError(t, r.Close())
			sb.waitStateLive(0)

			// when it (and every epoch) logs on into the broken pipe, through
			// two hot restarts,
			for n := 1; n <= 2; n++ {
				p.Signal(syscall.SIGHUP)
				sb.waitStateLive(n)
			}

			// then it keeps serving, and still stops cleanly on SIGTERM.
			require.True(t, p.Alive(), "the restarter survived the broken pipe")
			p.Signal(syscall.SIGTERM)
			require.Equal(t, proctest.Exit{Code: 0}, p.Wait(wait))
		})
	}
}

// Issue 14, defect 2: a stalled log reader (runit's log service down, its
// pipe full) must not freeze the event loop: epochs still start, hot restart
// and stop, lines that do not fit are dropped and counted, and the count is
// reported once the reader is back.
func TestStalledLogReaderFreezesNothing(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, quietBody)
	r, w := fullPipe(t)

	// Given a restarter whose log pipe is full before its first line,
	p := sb.startTo(w)
	w.Close()

	// epoch 0 starts, a hot restart completes,
	sb.waitStateLive(0)
	p.Signal(syscall.SIGHUP)
	sb.waitStateLive(1)
	// and a stream of SIGUSR1s is forwarded, one at a time, far more log
	// lines than the restarter keeps for a slow reader.
	epochLog := sb.Path("epoch.1.log")
	for i := 1; i <= 200; i++ {
		p.Signal(syscall.SIGUSR1)
		proctest.WaitFor(t, wait, "epoch 1 reopening its logs "+strconv.Itoa(i)+" times", func() bool {
			return countIn(epochLog, `caught SIGUSR1`) >= i
		})
	}

	// When the reader comes back, it gets the lines kept, then the count of
	// those dropped.
	lines := lineReader(r)
	waitFor(t, lines, `\]\[restarter\] starting hot-restarter with target: `)
	line := waitFor(t, lines, `\]\[warning\]\[restarter\] dropped \d+ log line\(s\): the log reader was not reading$`)
	n, err := strconv.Atoi(regexp.MustCompile(`dropped (\d+)`).FindStringSubmatch(line)[1])
	require.NoError(t, err)
	require.Positive(t, n)
	p.Signal(syscall.SIGTERM)
	waitFor(t, lines, `\]\[restarter\] exiting with code=0$`)
	require.Equal(t, proctest.Exit{Code: 0}, p.Wait(wait))
}

// Issue 14, defect 2: with its log reader stalled for good, SIGTERM still
// stops everything: the epoch that ignores it is KILLed after --term-wait,
// and the restarter exits.
func TestSIGTERMStopsEverythingWithAStalledLogReader(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, stubbornBody)
	_, w := fullPipe(t)
	p := sb.startTo(w, "--term-wait", "1s")
	w.Close()
	pid := readPID(t, sb.Path("epoch.0.pid"))

	p.Signal(syscall.SIGTERM)

	require.Equal(t, proctest.Exit{Code: 1}, p.Wait(wait), "forced kill after --term-wait")
	require.False(t, proctest.Alive(pid), "epoch 0 was KILLed")
}

// fullPipe returns a pipe shrunk to one page and filled: the next write to
// w blocks until r is read.
func fullPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	size, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 4096)
	require.NoError(t, err)
	_, err = w.Write([]byte(strings.Repeat("#", size-1) + "\n"))
	require.NoError(t, err)
	return r, w
}
