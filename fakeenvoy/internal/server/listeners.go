package server

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/config"
	"golang.org/x/sys/unix"
)

// listener is one configured listener: its socket (bound here or received
// from the parent) and the HTTP server answering on it once workers start.
type listener struct {
	cfg         config.Listener
	ln          net.Listener
	http        *http.Server
	logs        []*accessLog
	epoch       uint32
	pid         int
	drain       *drainManager
	connections *atomic.Int64
	inherited   bool
}

// drainManager is Envoy's DrainManagerImpl for a hot restart drain: once
// started, each response decides whether to ask the client to close
// (connection: close). immediate: always. gradual: with probability
// elapsed/drain time, so closes spread over the drain time; at or past it,
// always.
type drainManager struct {
	strategy  string
	drainTime time.Duration
	random    func(n int64) int64 // rand.Int64N unless a test sets it
	mu        sync.Mutex
	began     time.Time // zero until the drain starts
}

func (d *drainManager) start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.began.IsZero() {
		d.began = time.Now()
	}
}

func (d *drainManager) draining() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.began.IsZero()
}

// drainClose says whether this response should carry connection: close.
func (d *drainManager) drainClose() bool {
	d.mu.Lock()
	began := d.began
	d.mu.Unlock()
	if began.IsZero() {
		return false
	}
	elapsed := time.Since(began)
	if d.strategy == "immediate" || d.drainTime <= 0 || elapsed >= d.drainTime {
		return true
	}
	random := d.random
	if random == nil {
		random = rand.Int64N
	}
	return elapsed > time.Duration(random(int64(d.drainTime)))
}

func (l *listener) address() string { return l.ln.Addr().String() }

// dupFD returns a close-on-exec duplicate of the listen socket for the
// child. Going through SyscallConn keeps the socket non-blocking (os.File.Fd
// would switch it to blocking).
func (l *listener) dupFD() int {
	rc, err := l.ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		return -1
	}
	dup := -1
	_ = rc.Control(func(fd uintptr) {
		if d, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); err == nil {
			dup = d
		}
	})
	return dup
}

// listenerFromFD wraps a socket received from the parent.
func listenerFromFD(fd int, name string) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return net.FileListener(f)
}

func (l *listener) serve() {
	l.http = &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second, ConnState: l.countConnection}
	go func() { _ = l.http.Serve(l.ln) }()
}

// countConnection keeps server.total_connections.
func (l *listener) countConnection(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		l.connections.Add(1)
	case http.StateClosed, http.StateHijacked:
		l.connections.Add(-1)
	}
}

// ServeHTTP answers with the configured direct response plus the epoch and
// pid, and writes the access log line before the response leaves.
func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	received, _ := io.Copy(io.Discard, r.Body)
	body := fmt.Sprintf("%sfakeenvoy epoch=%d pid=%d\n", l.cfg.Body, l.epoch, l.pid)
	h := w.Header()
	h.Set("content-type", "text/plain")
	h.Set("server", "envoy")
	h.Set("x-fakeenvoy-epoch", strconv.FormatUint(uint64(l.epoch), 10))
	h.Set("x-fakeenvoy-pid", strconv.Itoa(l.pid))
	h.Set("content-length", strconv.Itoa(len(body)))
	if l.drain.drainClose() {
		// A draining Envoy asks HTTP/1.1 clients to go elsewhere.
		h.Set("connection", "close")
	}
	sent := len(body)
	if r.Method == http.MethodHead {
		sent = 0
	}
	line := accessLogLine(start, r, l.cfg.Status, received, sent, time.Since(start))
	for _, a := range l.logs {
		a.write(line)
	}
	w.WriteHeader(l.cfg.Status)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
}

// accessLogLine is Envoy's default access log format.
func accessLogLine(start time.Time, r *http.Request, status int, received int64, sent int, d time.Duration) string {
	q := func(s string) string {
		if s == "" {
			return "-"
		}
		return strings.ReplaceAll(s, `"`, `\"`)
	}
	return fmt.Sprintf("[%s] \"%s %s %s\" %d - %d %d %d - \"%s\" \"%s\" \"%s\" \"%s\" \"-\"\n",
		start.UTC().Format("2006-01-02T15:04:05.000Z"), r.Method, q(r.URL.RequestURI()), r.Proto,
		status, received, sent, d.Milliseconds(),
		q(r.Header.Get("x-forwarded-for")), q(r.UserAgent()), q(r.Header.Get("x-request-id")), q(r.Host))
}
