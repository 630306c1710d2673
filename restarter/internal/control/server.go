// Package control is the restarter's control socket: its protocol (one JSON
// request line, {"command":"status"} or {"command":"reload"}, one JSON reply
// line) and its server, which hands each request to the event loop as a
// Call and writes the answer back. Only the restarter's own user and root
// may connect; idle connections time out and give their place to new ones,
// so an operator always gets an answer.
package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/envoy-restarter/restarter/restarter/status"
)

// maxRequest bounds a request line; longer requests are refused.
const maxRequest = 4096

// Timeout bounds writing a reply, and the client's dial.
const Timeout = 5 * time.Second

// requestTimeout bounds how long a connection may take to send its request.
// The client sends it at once; an idle connection holds one of the
// maxControlConns slots, and must give it up quickly.
const requestTimeout = 2 * time.Second

// maxControlConns caps the control connections open at once. Each costs a
// file descriptor, and a flood of idle ones must not take the descriptors a
// hot restart needs. At the cap, a new connection takes the place of the
// oldest idle one (one that has not sent its request yet): idle connections
// cannot lock the operator's `restarter status` out.
const maxControlConns = 16

// fdReserve is how many file descriptors below the RLIMIT_NOFILE limit a
// control connection may never take: they stay free for forking the next
// epoch (which needs two) and running its helpers.
const fdReserve = 8

// Backoff bounds of the accept loop after an error such as EMFILE.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// Request is the one request line.
type Request struct {
	Command string `json:"command"`
}

// Reply is the one reply line.
type Reply struct {
	OK     bool           `json:"ok"`
	Error  string         `json:"error,omitempty"`
	Epoch  *int           `json:"epoch,omitempty"`
	Status *status.Status `json:"status,omitempty"`
	// Restart is a reload's own record: the restart that answered it.
	Restart *status.Restart `json:"restart,omitempty"`
	// Metrics is the answer to metrics: the text exposition format.
	Metrics string `json:"metrics,omitempty"`
}

// Call is a request handed to the event loop, which answers it exactly
// once on Reply (buffered: the answer never blocks).
type Call struct {
	Command string // status or reload
	Reply   chan Reply
}

// Server accepts connections on the control socket and hands each
// request to the event loop.
type Server struct {
	ln    *net.UnixListener
	calls chan Call
	done  chan struct{} // closed when the event loop stops answering
	log   func(msg string)
	// mu guards the connections being served, maxControlConns at most:
	// those still to send their request (idle, oldest first), and those
	// whose request is being answered (busy).
	mu   sync.Mutex
	idle []*net.UnixConn
	busy int
	// handlers counts connections being served, so that close can let the
	// answers the event loop already gave reach their clients.
	handlers sync.WaitGroup
	served   chan struct{} // closed when serve has stopped accepting
}

// Listen creates the control socket at path, mode 0600. A stale
// socket left by a dead restarter is replaced; a live one is an error.
func Listen(path string, logError func(string)) (*Server, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: in use by another process", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &Server{ln: ln, calls: make(chan Call), done: make(chan struct{}), served: make(chan struct{}), log: logError}
	go s.serve()
	return s, nil
}

// Calls are the requests for the event loop to answer.
func (s *Server) Calls() <-chan Call { return s.calls }

// Done is closed once Close began: no more calls come.
func (s *Server) Done() <-chan struct{} { return s.done }

// closeFlushWait bounds how long close waits for answers being written.
const closeFlushWait = time.Second

// Close stops accepting, removes the socket, fails calls still waiting and
// waits (up to closeFlushWait) until every answer has been written: a
// reload answered just before the restarter exits must reach its client.
func (s *Server) Close() {
	close(s.done)
	s.ln.Close()
	flushed := make(chan struct{})
	go func() {
		<-s.served // no handler is added after this
		s.closeIdle()
		s.handlers.Wait()
		close(flushed)
	}()
	select {
	case <-flushed:
	case <-time.After(closeFlushWait):
	}
}

// serve accepts connections until the socket is closed. An accept error
// (EMFILE above all) is logged once and retried with backoff; it never
// ends the loop.
func (s *Server) serve() {
	defer close(s.served)
	var backoff time.Duration
	crowded := "" // what was logged about the last connection not admitted freely
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if backoff == 0 {
				s.log(fmt.Sprintf("control socket: accept: %v; retrying with backoff", err))
				backoff = minAcceptBackoff
			} else {
				backoff = min(2*backoff, maxAcceptBackoff)
			}
			select {
			case <-time.After(backoff):
			case <-s.done:
				return
			}
			continue
		}
		if backoff != 0 {
			s.log("control socket: accepting connections again")
			backoff = 0
		}
		admitted, crowd := s.admit(conn)
		if crowd != "" && crowd != crowded {
			s.log("control socket: " + crowd) // once per crowd, not per connection
		}
		crowded = crowd
		if !admitted {
			conn.Close()
			continue
		}
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			s.handle(conn)
		}()
	}
}

// admit makes conn the newest idle connection, closing the oldest idle one
// if every slot is taken. It refuses conn when every slot is busy
// answering a request, or conn took one of the file descriptors kept in
// reserve for hot restarts. crowd says what was done, if conn was not
// admitted freely.
func (s *Server) admit(conn *net.UnixConn) (admitted bool, crowd string) {
	if fd, limit, ok := fdOf(conn); ok && fd >= limit-fdReserve {
		return false, fmt.Sprintf("closing new connections at once: too few file descriptors left (fd %d of RLIMIT_NOFILE %d; %d are kept for hot restarts)", fd, limit, fdReserve)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.idle)+s.busy >= maxControlConns {
		if len(s.idle) == 0 {
			return false, fmt.Sprintf("closing new connections at once: all %d control connections are answering requests", maxControlConns)
		}
		s.idle[0].Close() // its handler sees the close and ends
		s.idle = s.idle[1:]
		crowd = fmt.Sprintf("%d control connections are open: closing the oldest idle one for each new one", maxControlConns)
	}
	s.idle = append(s.idle, conn)
	return true, crowd
}

// startRequest marks conn busy, done with its request line; it reports
// false if conn was closed to make room for a newer one.
func (s *Server) startRequest(conn *net.UnixConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.idle, conn)
	if i < 0 {
		return false
	}
	s.idle = slices.Delete(s.idle, i, i+1)
	s.busy++
	return true
}

// closeIdle closes the connections that have not sent a request: at exit,
// there is nothing to answer them, and close need not wait for them.
func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, conn := range s.idle {
		conn.Close()
	}
	s.idle = nil
}

func (s *Server) endRequest() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy--
}

// handle serves conn, which admit took.
func (s *Server) handle(conn *net.UnixConn) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(requestTimeout))
	reply := func(r Reply) {
		conn.SetWriteDeadline(time.Now().Add(Timeout))
		b, _ := json.Marshal(r)
		conn.Write(append(b, '\n'))
	}
	// The request is read before anything is answered: closing a unix socket
	// with unread data would reset the connection under the client.
	rd := bufio.NewReader(io.LimitReader(conn, maxRequest+1))
	line, err := rd.ReadBytes('\n')
	if !s.startRequest(conn) {
		return // closed to make room: nobody is listening
	}
	defer s.endRequest()
	if uid, uerr := peerUID(conn); uerr != nil || (uid != 0 && uid != os.Getuid()) {
		s.log(fmt.Sprintf("control socket: refused a connection from uid %d", uid))
		reply(Reply{Error: "permission denied: only the restarter's user and root may use the control socket"})
		return
	}
	switch {
	case len(line) > maxRequest:
		reply(Reply{Error: fmt.Sprintf("request too large: the limit is %d bytes", maxRequest)})
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		reply(Reply{Error: fmt.Sprintf("no request within %s: want one JSON line such as {\"command\":\"status\"}", requestTimeout)})
		return
	case err != nil && !(errors.Is(err, io.EOF) && len(line) > 0):
		reply(Reply{Error: "malformed request: want one JSON line such as {\"command\":\"status\"}"})
		return
	case rd.Buffered() > 0:
		reply(Reply{Error: "malformed request: extra data after the request line (one request per connection)"})
		return
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		reply(Reply{Error: "malformed request: " + err.Error()})
		return
	}
	if req.Command != "status" && req.Command != "reload" && req.Command != "metrics" {
		reply(Reply{Error: fmt.Sprintf("unknown command %q: want status, reload or metrics", req.Command)})
		return
	}
	conn.SetReadDeadline(time.Time{}) // a reload lasts as long as the restart
	call := Call{Command: req.Command, Reply: make(chan Reply, 1)}
	select {
	case s.calls <- call:
	case <-s.done:
		reply(Reply{Error: "the restarter is exiting"})
		return
	}
	select {
	case r := <-call.Reply:
		reply(r)
	case <-s.done:
		// The event loop answers every reload before it stops: prefer its
		// answer when both are ready.
		select {
		case r := <-call.Reply:
			reply(r)
		default:
			reply(Reply{Error: "the restarter is exiting"})
		}
	}
}

// Ask sends one request to the control socket at path and reads the reply.
func Ask(path, command string, timeout time.Duration) (Reply, error) {
	var reply Reply
	conn, err := net.DialTimeout("unix", path, Timeout)
	if err != nil {
		return reply, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	b, _ := json.Marshal(Request{Command: command})
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return reply, fmt.Errorf("control socket %s: %w", path, err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return reply, fmt.Errorf("control socket %s: no reply: %w", path, err)
	}
	if err := json.Unmarshal(line, &reply); err != nil {
		return reply, fmt.Errorf("control socket %s: malformed reply: %w", path, err)
	}
	return reply, nil
}
