package relay

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/internal/procfs"
)

// The figures in docs/LOG-RELAY.md come from (one at a time: the
// throughput runs want many lines, the memory runs one round):
//
//	GOMAXPROCS=1 go test -run '^$' -bench Throughput -benchtime 3000000x ./restarter/internal/relay
//	go test -run '^$' -bench ResidentMemory -benchtime 1x ./restarter/internal/relay
//
// The children are processes (this test binary, as benchChild), as Envoy
// is, and so is the throughput runs' log reader (wc -c). The restarter
// runs on one P (cli.TuneRuntime): GOMAXPROCS=1 measures the relay as it
// runs there. Nothing asserts a speed: the machine's load is not the
// relay's.

const typicalLine = 150 // bytes: an Envoy info line with its source location

// childEnv makes the test binary a benchmark's child: "src width
// linesPerWrite stalledWrites flowingWrites writesPerSecond" (0: flat out).
const childEnv = "RELAY_BENCH_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(benchChild(spec))
	}
	os.Exit(m.Run())
}

// benchChild writes lines of width bytes to stdout, linesPerWrite at a
// time: first its stalled writes, then, after it said so on fd 3 and read
// a byte from stdin, its flowing writes, paced if asked.
func benchChild(spec string) int {
	var src, width, perWrite, stalled, flowing, pace int
	if _, err := fmt.Sscan(spec, &src, &width, &perWrite, &stalled, &flowing, &pace); err != nil {
		return 2
	}
	writes := make([][]byte, 64)
	for i := range writes {
		for j := range perWrite {
			writes[i] = append(writes[i], logLine(src, i*perWrite+j, width)...)
		}
	}
	for i := range stalled {
		os.Stdout.Write(writes[i%len(writes)])
	}
	os.NewFile(3, "wrote").Write([]byte{1})
	os.Stdin.Read(make([]byte, 1))
	start := time.Now()
	for i := range flowing {
		os.Stdout.Write(writes[i%len(writes)])
		if pace > 0 && i%100 == 99 {
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * time.Second / time.Duration(pace))))
		}
	}
	return 0
}

// figures are one run's.
type figures struct {
	offered, delivered int64 // bytes the children wrote, the reader got
	dropped            uint64
	elapsed, cpu       time.Duration // the flowing part's; cpu is this process's
}

// load is what the three children write.
type load struct {
	width, perWrite  int  // bytes a line, lines a write
	stalled, flowing int  // writes, each child
	pace             int  // flowing writes a second, each child; 0: flat out
	direct           bool // no relay: they write to the destination pipe (a control)
	// readerProcess: the relay's pipe is drained by a process of its own
	// (wc -c), as a log reader is, rather than by this one.
	readerProcess bool
}

// run relays three children's output to a pipe: first their stalled
// writes while nobody reads it, then their flowing writes while a reader
// drains it into buf.
func run(tb testing.TB, l load, buf []byte) figures {
	dstR, dstW := pipe(tb)
	defer dstR.Close()
	r := New(dstW, DefaultBuffered, report)
	if l.direct {
		r.Close(0)
	}
	wroteR, wroteW := pipe(tb)
	defer wroteR.Close()
	resumeR, resumeW := pipe(tb)
	defer resumeW.Close()
	children := make([]*exec.Cmd, 3)
	for src := range children {
		out, in := pipe(tb)
		if l.direct {
			out.Close()
			in = dstW
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %d %d %d %d %d", childEnv, src, l.width, l.perWrite, l.stalled, l.flowing, l.pace))
		cmd.Stdin, cmd.Stdout, cmd.ExtraFiles = resumeR, in, []*os.File{wroteW}
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		if !l.direct {
			in.Close()
			r.Add(out)
		}
		children[src] = cmd
	}
	resumeR.Close()
	wroteW.Close()
	// Nobody reads the relay's pipe until each child wrote its stalled part.
	if _, err := io.ReadFull(wroteR, make([]byte, len(children))); err != nil {
		tb.Fatal(err)
	}
	got := make(chan int64, 1)
	if l.readerProcess {
		go drainInAProcess(tb, dstR, got)
	} else {
		go drain(dstR, buf, got)
	}
	start, cpu := time.Now(), cpuTime()
	resumeW.Write([]byte{1, 1, 1})
	for _, cmd := range children {
		if err := cmd.Wait(); err != nil {
			tb.Fatal(err)
		}
	}
	r.Close(time.Minute)
	dstW.Close()
	delivered := <-got
	return figures{
		offered:   int64(3 * (l.stalled + l.flowing) * l.perWrite * l.width),
		delivered: delivered,
		dropped:   r.Dropped(),
		elapsed:   time.Since(start),
		cpu:       cpuTime() - cpu,
	}
}

// drain reads r until EOF, as a log reader would, and sends how many
// bytes it got.
func drain(r *os.File, buf []byte, got chan<- int64) {
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(m)
		if err != nil {
			got <- n
			return
		}
	}
}

// drainInAProcess has wc -c read r until EOF, and sends how many bytes it
// counted.
func drainInAProcess(tb testing.TB, r *os.File, got chan<- int64) {
	wc := exec.Command("wc", "-c")
	var out strings.Builder
	wc.Stdin, wc.Stdout = r, &out
	if err := wc.Run(); err != nil {
		tb.Error(err)
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	got <- n
}

func pipe(tb testing.TB) (r, w *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	return r, w
}

// cpuTime is the CPU time this process (every thread, not the children)
// used so far.
func cpuTime() time.Duration {
	var u syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

func BenchmarkThroughput(b *testing.B) {
	perBlock := 64 << 10 / typicalLine
	for _, c := range []struct {
		name     string
		perWrite int // lines
		pace     int // MB/s, each child
	}{
		{"one-line-per-write", 1, 0},
		{"64KiB-writes", perBlock, 0},
		{"one-line-per-write-paced-3x5MB/s", 1, 5},
		{"one-line-per-write-paced-3x20MB/s", 1, 20},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := load{width: typicalLine, perWrite: c.perWrite, flowing: max(1, b.N/3/c.perWrite), readerProcess: true} // b.N lines, a third each
			l.pace = c.pace * 1e6 / (typicalLine * c.perWrite)
			buf := make([]byte, 64<<10)
			b.ResetTimer()
			f := run(b, l, buf)
			mb := float64(f.offered) / 1e6
			b.ReportMetric(mb/f.elapsed.Seconds(), "offered-MB/s")
			b.ReportMetric(float64(f.delivered)/1e6/f.elapsed.Seconds(), "delivered-MB/s")
			b.ReportMetric(float64(f.dropped)/float64(f.offered/typicalLine)*100, "dropped-%")
			b.ReportMetric(float64(f.cpu.Microseconds())/1e3/mb, "relay-CPU-ms/MB")
		})
	}
}

// BenchmarkResidentMemory measures the resident memory the relay adds with
// three sources: the peak VmRSS (VmHWM, reset through /proc/self/clear_refs
// first) while 3 × 8 MB go through a stalled reader (the queue full, lines
// dropped) and then 3 × 32 MB through a reader that drains, less VmRSS
// before the relay was made, after a GC returned free memory to the
// system; less the same for a control run with no relay (the children
// writing to the reader's pipe themselves: what starting them and reading
// cost). heap-alloc-KiB is what the Go heap allocated in the relay's run
// (runtime/metrics, after a GC flushed the counts): the relay's and
// starting the children's.
func BenchmarkResidentMemory(b *testing.B) {
	for _, c := range []struct {
		name  string
		width int
	}{{"150B-lines", typicalLine}, {"64KiB-lines", MaxLine}} {
		b.Run(c.name, func(b *testing.B) {
			perWrite := max(1, 64<<10/c.width)
			l := load{width: c.width, perWrite: perWrite, stalled: 8 << 20 / (perWrite * c.width), flowing: 32 << 20 / (perWrite * c.width)}
			control := l
			control.direct, control.stalled = true, 0
			var relayed, direct, heap int64
			for range b.N {
				direct, _ = residentMemory(b, control)
				relayed, heap = residentMemory(b, l)
			}
			b.ReportMetric(float64(relayed-direct)/1024, "added-RSS-KiB")
			b.ReportMetric(float64(direct)/1024, "control-RSS-KiB")
			b.ReportMetric(float64(heap)/1024, "heap-alloc-KiB")
		})
	}
}

// residentMemory returns the growth of the peak RSS during run, and the
// bytes the Go heap allocated meanwhile.
func residentMemory(b *testing.B, l load) (rss, heap int64) {
	buf := make([]byte, 64<<10)
	clear(buf) // resident before the baseline: the reader's, not the relay's
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset the peak RSS: %v", err)
	}
	before, _, err := procfs.Memory(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	allocs := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(allocs)
	allocated := allocs[0].Value.Uint64()

	f := run(b, l, buf)
	if f.dropped == 0 && !l.direct {
		b.Fatal("the queue never filled")
	}

	_, peak, err := procfs.Memory(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	metrics.Read(allocs)
	return (peak - before) << 10, int64(allocs[0].Value.Uint64() - allocated)
}
