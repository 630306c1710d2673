package server

import (
	"fmt"
	"net"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/config"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/hotrestart"
)

// socketsPerAddress is how many listen sockets an address of c gets, as
// Envoy's ListenSocketFactoryImpl makes them: one per worker
// (--concurrency) for a TCP listener with reuse port, each its own
// SO_REUSEPORT socket; one, which every worker shares, otherwise (a pipe,
// or reuse port off).
func (s *Server) socketsPerAddress(c config.Listener, a config.Address) uint32 {
	if c.ReusePort && !a.Pipe() {
		return s.opts.Concurrency
	}
	return 1
}

// addSockets creates the listen sockets of l's address a (the i-th), worker
// 0's first: asked from the parent by the configured address, the others
// at the address worker 0's socket got (its port, for port 0), each with
// its worker index, as Envoy's ProdListenerComponentFactory::
// createListenSocket asks (duplicateParentListenSocket); a socket the
// parent does not give is bound here.
func (s *Server) addSockets(l *listener, i int, a config.Address) error {
	var first *socket
	for w := range s.socketsPerAddress(l.cfg, a) {
		at := a
		if first != nil {
			at = boundAddress(a, first)
		}
		sock, err := s.listenSocket(l.cfg, at, w)
		if err != nil {
			return err
		}
		sock.address = i
		l.sockets = append(l.sockets, sock)
		if first == nil {
			first = sock
		}
		origin := "bound"
		if sock.inherited {
			origin = "from parent"
		}
		if w > 0 {
			origin = fmt.Sprintf("worker %d, %s", w, origin)
		}
		s.log.Info("config", "listener '%s' on %s (%s)", l.cfg.Name, sock.local(), origin)
	}
	return nil
}

// boundAddress is a with the port its first socket got.
func boundAddress(a config.Address, first *socket) config.Address {
	if tcp, ok := first.ln.Addr().(*net.TCPAddr); ok {
		a.Port = uint16(tcp.Port)
	}
	return a
}

// listenSocket is worker's socket at a: the parent's, or a new one.
func (s *Server) listenSocket(c config.Listener, a config.Address, worker uint32) (*socket, error) {
	sock := &socket{addr: a, worker: worker}
	if s.hr != nil {
		fd, err := s.hr.Child.DuplicateParentListenSocket(hotrestart.ListenSocketRequest{
			Address: a.String(), Worker: worker, Name: c.Name,
			ByName: s.opts.FakeReusePortZero && !a.Pipe() && a.Port == 0,
		})
		if err != nil {
			return nil, err
		}
		if fd >= 0 {
			if sock.ln, err = listenerFromFD(fd, c.Name); err != nil {
				return nil, fmt.Errorf("listener '%s': socket from parent: %w", c.Name, err)
			}
			sock.inherited = true
			return sock, nil
		}
	}
	ln, err := bind(a, c.ReusePort)
	if err != nil {
		return nil, fmt.Errorf("error adding listener '%s': %w", a, bindError(a, err))
	}
	sock.ln = ln
	return sock, nil
}

// listenSocketForChild is Envoy's getListenSocketsForChild
// (source/server/hot_restarting_parent.cc): the first listener address
// whose socket is at the address asked (the actual address: a port-0
// listener's kernel port; by the listener's name too with
// --fake-reuse-port-zero); for a worker index beyond this epoch's own
// concurrency, none; else that worker's socket, the one socket of a
// listener without reuse port serving every index. A socket a drain
// stopped is closed: none either. It returns a duplicate, or -1.
func (s *Server) listenSocketForChild(req hotrestart.ListenSocketRequest) int {
	for _, l := range s.listeners {
		for _, group := range l.socketsByAddress() {
			first := group[0]
			if first.local() != req.Address && !(req.ByName && l.cfg.Name == req.Name && first.addr.String() == req.Address) {
				continue
			}
			if req.Worker >= s.opts.Concurrency {
				return -1
			}
			sock := first
			if int(req.Worker) < len(group) {
				sock = group[req.Worker]
			}
			if sock.stopped {
				return -1
			}
			return sock.dupFD()
		}
	}
	return -1
}
