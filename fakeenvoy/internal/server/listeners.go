package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/config"
	"golang.org/x/sys/unix"
)

// listener is one configured listener: its listen sockets (per address,
// one per worker with reuse port; bound here or received from the parent)
// and, once workers start, a server on each that answers as the
// listener's HTTP connection manager says.
type listener struct {
	cfg         config.Listener
	sockets     []*socket
	router      *router // nil: the listener's network filter is parsed, not served
	epoch       uint32
	pid         int
	drain       drainDecision
	connections *atomic.Int64
	httpStats   *httpStats // nil with no connection manager
}

// socket is one of a listener's listen sockets.
type socket struct {
	addr      config.Address // as configured (workers but 0: at worker 0's port)
	address   int            // which of the listener's addresses
	worker    uint32         // whose socket it is, with one per worker
	ln        net.Listener
	inherited bool
	stop      func() error // set by serve
	// stopped: this epoch closed its descriptor (a drain stopped the
	// listener), so it has none to hand a child. Dispatcher only.
	stopped bool
}

// local is the socket's actual address, as /listeners reports it.
func (s *socket) local() string { return s.ln.Addr().String() }

// socketsByAddress groups l's sockets by address, in order, each group
// by worker.
func (l *listener) socketsByAddress() [][]*socket {
	var groups [][]*socket
	for _, s := range l.sockets {
		if s.address == len(groups) {
			groups = append(groups, nil)
		}
		groups[s.address] = append(groups[s.address], s)
	}
	return groups
}

// bind creates a listen socket for a: SO_REUSEPORT as configured for TCP;
// for a pipe, the stale path is removed first and the mode applied, as
// Envoy does. Go must not unlink the path on close: the socket lives on in
// the next epoch.
func bind(a config.Address, reusePort bool) (net.Listener, error) {
	lc := net.ListenConfig{}
	if reusePort && !a.Pipe() {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	if a.Pipe() && a.Path[0] != '@' {
		_ = os.Remove(a.Path)
	}
	ln, err := lc.Listen(context.Background(), a.Network(), a.String())
	if err != nil {
		return nil, err
	}
	if u, ok := ln.(*net.UnixListener); ok {
		u.SetUnlinkOnClose(false)
		if a.Mode != 0 && a.Path[0] != '@' {
			if err := os.Chmod(a.Path, a.Mode); err != nil {
				ln.Close()
				return nil, err
			}
		}
	}
	return ln, nil
}

// dupFD returns a close-on-exec duplicate of the listen socket for the
// child. Going through SyscallConn keeps the socket non-blocking (os.File.Fd
// would switch it to blocking).
func (s *socket) dupFD() int {
	sc, ok := s.ln.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
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
	ln, err := net.FileListener(f)
	if u, ok := ln.(*net.UnixListener); ok {
		u.SetUnlinkOnClose(false)
	}
	return ln, err
}

// serve starts accepting on every socket: HTTP when the listener has a
// connection manager; otherwise each connection is accepted and closed.
func (l *listener) serve(newHTTP func(*listener) httpServer) {
	for _, s := range l.sockets {
		if l.router == nil {
			s.stop = acceptAndClose(s.ln)
			continue
		}
		srv := newHTTP(l)
		go func() { _ = srv.Serve(s.ln) }()
		s.stop = srv.Close
	}
}

// newHTTPServer is the HTTP server on each of a listener's sockets: HTTP/1.0
// gets 426 unless the connection manager accepts it, as in Envoy, and the
// connections are counted for the stats.
func newHTTPServer(l *listener) httpServer {
	var h http.Handler = l.router
	if !l.router.http.AcceptHTTP10 {
		h = refuseBelowHTTP11(h)
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ConnState: l.countConnection}
}

// countConnection keeps the connection counts: server.total_connections
// and the connection manager's downstream_cx_*.
func (l *listener) countConnection(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		l.connections.Add(1)
		l.httpStats.cxTotal.Inc()
		l.httpStats.cxActive.Inc()
	case http.StateClosed, http.StateHijacked:
		l.connections.Add(-1)
		l.httpStats.cxActive.Dec()
	}
}

// httpServer is the part of *http.Server a listener drives.
type httpServer interface {
	Serve(net.Listener) error
	Close() error
}

func acceptAndClose(ln net.Listener) func() error {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Close
}

// close stops the listener. Open connections are closed, not waited on:
// Envoy's workers exit with the process.
func (l *listener) close() {
	for _, s := range l.sockets {
		s.stopped = true
		if s.stop == nil {
			_ = s.ln.Close()
			continue
		}
		if err := s.stop(); err != nil && !errors.Is(err, net.ErrClosed) {
			_ = s.ln.Close()
		}
	}
}

// stopAccepting closes our descriptors, as Envoy's stopListeners does once
// the workers stopped accepting: new clients are refused (unless a child
// holds the socket), while the connections already accepted are served on.
func (l *listener) stopAccepting() {
	for _, s := range l.sockets {
		s.stopped = true
		_ = s.ln.Close()
	}
}

// stopListeners is Envoy's ListenerManagerImpl::stopListeners: every
// listener the drain direction covers (INBOUND ones only for InboundOnly)
// stops accepting.
func (s *Server) stopListeners(direction drainDirection) {
	for _, l := range s.listeners {
		if direction == drainAll || l.cfg.Inbound {
			l.stopAccepting()
		}
	}
}

// bindError is Envoy's message for a listen socket it cannot create.
func bindError(a config.Address, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fmt.Errorf("cannot bind '%s': %s", a, errno.Error())
	}
	return fmt.Errorf("cannot bind '%s': %v", a, err)
}
