package hotrestart

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// sendRetries is Envoy's SENDMSG_MAX_RETRIES for a refused send.
const sendRetries = 10

// Logger is the little logging hot restart needs.
type Logger interface {
	Info(component, format string, args ...any)
	Warn(component, format string, args ...any)
	Error(component, format string, args ...any)
}

// Child is this epoch talking to epoch-1. All methods are no-ops once the
// parent is gone (epoch 0, --skip-hot-restart-on-no-parent fallback, or
// after TerminateParent). Methods are called from one goroutine.
type Child struct {
	ep         *Endpoint
	parentName string
	terminated bool
	skipStats  bool
	retryDelay time.Duration
	log        Logger
}

// HasParent says whether there is a parent to talk to.
func (c *Child) HasParent() bool { return !c.terminated }

// send retries ECONNREFUSED like Envoy (the parent may not be up yet) and
// turns any other failure into a FatalError, Envoy's RELEASE_ASSERT.
func (c *Child) send(m Message, retry bool) error {
	var err error
	for i := 0; i < sendRetries; i++ {
		err = c.ep.Send(c.parentName, m, -1)
		if err == nil {
			return nil
		}
		if !retry || !errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		c.log.Error("main", "hot restart sendmsg() connection refused, retrying")
		time.Sleep(c.retryDelay)
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return &FatalError{fmt.Sprintf("hot restart sendmsg() failed: %v", err)}
	}
	return &FatalError{fmt.Sprintf("hot restart sendmsg() failed: returned -1, errno %d", int(errno))}
}

func (c *Child) receive(want Type) (Message, int, error) {
	m, fd, err := c.ep.Receive()
	if err != nil {
		return m, -1, &FatalError{fmt.Sprintf("recvmsg() failed: %v", err)}
	}
	if m.Type != want {
		if fd >= 0 {
			closeFD(fd)
		}
		return m, -1, fmt.Errorf("parent answered %s, want %s", m.Type, want)
	}
	return m, fd, nil
}

// TestConnection implements --skip-hot-restart-on-no-parent: one send
// without retries; when refused the child carries on as if it had no parent.
func (c *Child) TestConnection() {
	if c.terminated {
		return
	}
	if err := c.ep.Send(c.parentName, Message{Type: RequestTestConnection}, -1); err != nil {
		c.log.Warn("main", "hot restart sendmsg() connection refused, falling back to regular restart")
		c.terminated = true
	}
}

// ShutdownParentAdmin asks the parent to close its admin listener (and so
// to terminate its own parent) and returns the first epoch's start time.
func (c *Child) ShutdownParentAdmin() (int64, error) {
	if c.terminated {
		return 0, nil
	}
	if err := c.send(Message{Type: RequestShutdownAdmin}, true); err != nil {
		return 0, err
	}
	m, _, err := c.receive(ReplyShutdownAdmin)
	if err != nil {
		return 0, &FatalError{"Hot restart parent did not respond as expected to ShutdownParentAdmin."}
	}
	return m.OriginalStartTimeUnixSeconds, nil
}

// ListenSocketRequest names the listen socket a child asks its parent for.
type ListenSocketRequest struct {
	// Address is the socket's address as the child's listener has it.
	Address string
	// Worker is Envoy's worker_index: which worker's socket of a listener
	// with one socket per worker (reuse port); 0 otherwise.
	Worker uint32
	// Name is the listener's name; with ByName (--fake-reuse-port-zero) a
	// port-0 listener's socket is matched by it.
	Name   string
	ByName bool
}

// DuplicateParentListenSocket asks the parent for a listen socket, as
// Envoy's duplicateParentListenSocket. It returns -1 when the parent has
// none to give.
func (c *Child) DuplicateParentListenSocket(req ListenSocketRequest) (int, error) {
	if c.terminated {
		return -1, nil
	}
	m := Message{Type: RequestPassListenSocket, Address: req.Address, WorkerIndex: req.Worker, Name: req.Name, ByName: req.ByName}
	if err := c.send(m, true); err != nil {
		return -1, err
	}
	_, fd, err := c.receive(ReplyPassListenSocket)
	if err != nil {
		var fatal *FatalError
		if errors.As(err, &fatal) {
			return -1, err
		}
		return -1, nil
	}
	return fd, nil
}

// DrainParentListeners tells the parent to stop accepting and drain. No reply.
func (c *Child) DrainParentListeners() error {
	if c.terminated {
		return nil
	}
	return c.send(Message{Type: RequestDrainListeners}, true)
}

// ParentStats is the stats exchange a child makes at every stats flush
// until it has terminated its parent (none with
// --skip-hot-restart-parent-stats): Envoy's getParentStats. ok is false
// when no request was made. A refused send is retried and then fatal, as
// is any reply but a stats reply.
func (c *Child) ParentStats() (reply Message, ok bool, err error) {
	if c.terminated || c.skipStats {
		return Message{}, false, nil
	}
	if err := c.send(Message{Type: RequestStats}, true); err != nil {
		return Message{}, false, err
	}
	m, _, err := c.receive(ReplyStats)
	if err != nil {
		return Message{}, false, &FatalError{"Hot restart parent did not respond as expected to get stats request."}
	}
	return m, true, nil
}

// TerminateParent tells the parent to exit; afterwards no more messages go
// out. Like every message, a refused send is retried ten times and then
// fatal: an epoch shutting down whose parent died aborts.
func (c *Child) TerminateParent() error {
	if c.terminated {
		return nil
	}
	c.terminated = true
	return c.send(Message{Type: RequestTerminate}, true)
}
