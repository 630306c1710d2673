package hotrestart

import (
	"errors"
	"net"

	"golang.org/x/sys/unix"
)

// ParentHandler is what a parent epoch does for its child. Each call runs
// to completion before the reply is sent.
type ParentHandler interface {
	// ShutdownAdmin closes the admin listener, terminates this epoch's own
	// parent, and returns the first epoch's start time.
	ShutdownAdmin() int64
	// ListenSocket returns a duplicate of the listen socket req names, or
	// -1. Parent.Serve closes it after sending.
	ListenSocket(req ListenSocketRequest) int
	// DrainListeners stops accepting and drains.
	DrainListeners()
	// Terminate begins a clean exit, as SIGTERM does.
	Terminate()
	// Stats answers a stats request: this epoch's used gauges, its
	// counters' increases since the last stats flush, and its open
	// connections.
	Stats() (gauges, counterDeltas map[string]uint64, connections uint64)
}

// Parent is this epoch answering epoch+1.
type Parent struct {
	ep        *Endpoint
	childName string
	log       Logger
}

// Serve answers the child until the endpoint is closed.
func (p *Parent) Serve(h ParentHandler) {
	for {
		m, fd, err := p.ep.Receive()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			p.log.Error("main", "hot restart: ignoring a message: %v", err)
			continue
		}
		if fd >= 0 {
			closeFD(fd)
		}
		p.handle(h, m)
	}
}

func (p *Parent) reply(m Message, fd int) {
	if err := p.ep.Send(p.childName, m, fd); err != nil {
		p.log.Error("main", "hot restart: reply to child failed: %v", err)
	}
}

func (p *Parent) handle(h ParentHandler, m Message) {
	if !m.Type.IsRequest() {
		p.log.Error("main", "child sent us a HotRestartMessage reply (we want requests); ignoring.")
		p.reply(Message{Type: ReplyDidntRecognize}, -1)
		return
	}
	switch m.Type {
	case RequestShutdownAdmin:
		start := h.ShutdownAdmin()
		p.reply(Message{Type: ReplyShutdownAdmin, OriginalStartTimeUnixSeconds: start}, -1)
	case RequestPassListenSocket:
		fd := h.ListenSocket(ListenSocketRequest{Address: m.Address, Worker: m.WorkerIndex, Name: m.Name, ByName: m.ByName})
		p.reply(Message{Type: ReplyPassListenSocket}, fd)
		if fd >= 0 {
			closeFD(fd)
		}
	case RequestStats:
		gauges, deltas, connections := h.Stats()
		p.reply(Message{Type: ReplyStats, Gauges: gauges, CounterDeltas: deltas, NumConnections: connections}, -1)
	case RequestDrainListeners:
		h.DrainListeners()
	case RequestTerminate:
		p.log.Info("main", "shutting down due to child request")
		h.Terminate()
	case RequestTestConnection:
		// Nothing to do: the send succeeding was the test.
	default:
		p.log.Error("main", "child sent us an unfamiliar type of HotRestartMessage; ignoring.")
		p.reply(Message{Type: ReplyDidntRecognize}, -1)
	}
}

func closeFD(fd int) { _ = unix.Close(fd) }
