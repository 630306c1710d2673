package hotrestart

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Type names a request or reply, after Envoy's HotRestartMessage oneofs.
type Type string

// The messages epochs exchange.
const (
	RequestShutdownAdmin    Type = "request.shutdown_admin"
	RequestPassListenSocket Type = "request.pass_listen_socket"
	RequestDrainListeners   Type = "request.drain_listeners"
	RequestTerminate        Type = "request.terminate"
	RequestTestConnection   Type = "request.test_connection"
	RequestStats            Type = "request.stats"
	ReplyShutdownAdmin      Type = "reply.shutdown_admin"
	ReplyPassListenSocket   Type = "reply.pass_listen_socket"
	ReplyStats              Type = "reply.stats"
	ReplyDidntRecognize     Type = "reply.didnt_recognize_your_last_message"
	headerSize                   = 8
	// maxSendmsgSize is Envoy's datagram size: a longer message goes out
	// as several datagrams, the first carrying the length header.
	maxSendmsgSize = 4096
	// maxMessageSize bounds what a length header may announce, so a bad
	// header cannot make a receiver allocate without limit.
	maxMessageSize = 64 << 20
)

// Message is one datagram between epochs. A listen socket travels beside
// it as SCM_RIGHTS control data, never inside it.
type Message struct {
	Type Type `json:"type"`
	// Address and WorkerIndex pick the socket in RequestPassListenSocket,
	// as Envoy's pass_listen_socket; Name is only consulted with
	// --fake-reuse-port-zero.
	Address     string `json:"address,omitempty"`
	WorkerIndex uint32 `json:"worker_index,omitempty"`
	Name        string `json:"name,omitempty"`
	ByName      bool   `json:"by_name,omitempty"`
	// OriginalStartTimeUnixSeconds answers RequestShutdownAdmin.
	OriginalStartTimeUnixSeconds int64 `json:"original_start_time_unix_seconds,omitempty"`
	// HasFD says a ReplyPassListenSocket carries a socket.
	HasFD bool `json:"has_fd,omitempty"`
	// Gauges, CounterDeltas and NumConnections answer RequestStats, as
	// Envoy's Reply.Stats: the parent's used gauges, each used counter's
	// increase since its last stats flush, and its open connections.
	Gauges         map[string]uint64 `json:"gauges,omitempty"`
	CounterDeltas  map[string]uint64 `json:"counter_deltas,omitempty"`
	NumConnections uint64            `json:"num_connections,omitempty"`
}

func (t Type) valid() bool {
	switch t {
	case RequestShutdownAdmin, RequestPassListenSocket, RequestDrainListeners, RequestTerminate,
		RequestTestConnection, RequestStats, ReplyShutdownAdmin, ReplyPassListenSocket, ReplyStats,
		ReplyDidntRecognize:
		return true
	}
	return false
}

// IsRequest says whether t is sent by a child to its parent.
func (t Type) IsRequest() bool { return len(t) > 8 && t[:8] == "request." }

// Encode frames m as an 8-byte big-endian length followed by JSON, the
// same shape as Envoy's length + protobuf. Send splits the frame into
// datagrams.
func Encode(m Message) ([]byte, error) {
	if !m.Type.valid() {
		return nil, fmt.Errorf("encode: unknown message type %q", m.Type)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(body) > maxMessageSize {
		return nil, fmt.Errorf("encode: message of %d bytes exceeds %d", len(body), maxMessageSize)
	}
	b := make([]byte, headerSize, headerSize+len(body))
	binary.BigEndian.PutUint64(b, uint64(len(body)))
	return append(b, body...), nil
}

// Decode parses one datagram; any malformed input is an error, never a panic.
func Decode(b []byte) (Message, error) {
	var m Message
	if len(b) < headerSize {
		return m, errors.New("received a brokenly tiny message fragment")
	}
	n := binary.BigEndian.Uint64(b)
	if n != uint64(len(b)-headerSize) {
		return m, fmt.Errorf("length header says %d bytes, datagram carries %d", n, len(b)-headerSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b[headerSize:]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("failed to parse a hot restart message: %w", err)
	}
	if dec.More() {
		return Message{}, errors.New("failed to parse a hot restart message: trailing data")
	}
	if !m.Type.valid() {
		return Message{}, fmt.Errorf("unknown message type %q", m.Type)
	}
	return m, nil
}

// Endpoint is one bound datagram socket: a process has a "child" one to
// talk to its parent and a "parent" one to answer its child.
type Endpoint struct {
	conn  *net.UnixConn
	name  string
	bound os.FileInfo // the path socket as bound; nil for an abstract name
}

// BindError is Envoy's domain socket bind failure. ID is the epoch as
// given, not reduced modulo three: Envoy reduces a copy for the name and
// prints the original.
type BindError struct {
	ScaledBaseID uint64
	ID           uint32
	Errno        syscall.Errno
}

func (e *BindError) Error() string {
	return fmt.Sprintf("unable to bind domain socket with base_id=%d, id=%d, errno=%d (see --base-id option)",
		e.ScaledBaseID, e.ID, int(e.Errno))
}

// InUse says the name is taken (EADDRINUSE), the one error on which a
// dynamic base id is retried.
func (e *BindError) InUse() bool { return e.Errno == syscall.EADDRINUSE }

// Bind binds name as Envoy's RpcStream::bindDomainSocket does: a
// non-blocking datagram socket, given mode with fchmod before the bind
// (createDomainSocketAddress), so the file the bind creates for a path
// name has mode less the umask, as a file created with open(2) would; a
// stale path is unlinked first. An abstract name ('@') makes no file.
func Bind(name string, mode uint32, scaledBaseID uint64, id uint32) (*Endpoint, error) {
	abstract := name[0] == '@'
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket for %s: %w", name, err)
	}
	// Envoy ignores fchmod's result; so does this.
	_ = unix.Fchmod(fd, mode)
	if !abstract {
		_ = os.Remove(name)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err != nil {
		_ = unix.Close(fd)
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			errno = syscall.EINVAL
		}
		return nil, &BindError{ScaledBaseID: scaledBaseID, ID: id, Errno: errno}
	}
	f := os.NewFile(uintptr(fd), name)
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("domain socket %s: %w", name, err)
	}
	e := &Endpoint{conn: pc.(*net.UnixConn), name: name}
	if !abstract {
		if e.bound, err = os.Stat(name); err != nil {
			e.conn.Close()
			return nil, fmt.Errorf("stat %s: %w", name, err)
		}
	}
	return e, nil
}

// Name is the bound name.
func (e *Endpoint) Name() string { return e.name }

// Close closes the socket and removes a path name, unless the path is no
// longer this socket's: a later epoch with the same id (epoch%3) unlinks and
// re-binds it while this one may still be draining.
func (e *Endpoint) Close() error {
	err := e.conn.Close()
	if e.bound != nil {
		if now, serr := os.Stat(e.name); serr == nil && os.SameFile(now, e.bound) {
			_ = os.Remove(e.name)
		}
	}
	return err
}

// Send sends m to the socket named to, with fd as SCM_RIGHTS when fd >= 0,
// in datagrams of at most 4096 bytes as Envoy sends (the socket, if any,
// rides on the first). The error wraps the errno, so callers can tell
// ECONNREFUSED (no one bound there) from the rest.
func (e *Endpoint) Send(to string, m Message, fd int) error {
	m.HasFD = fd >= 0
	b, err := Encode(m)
	if err != nil {
		return err
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	addr := &net.UnixAddr{Name: to, Net: "unixgram"}
	for len(b) > 0 {
		n := min(len(b), maxSendmsgSize)
		if _, _, err := e.conn.WriteMsgUnix(b[:n], oob, addr); err != nil {
			return err
		}
		b, oob = b[n:], nil
	}
	return nil
}

// Receive blocks for the next message, reassembling it from as many
// datagrams as its length header announces. It returns the passed fd, or
// -1; the caller owns the fd. Control data on a message that should not
// carry a socket is an error (and the fds are closed).
func (e *Endpoint) Receive() (Message, int, error) {
	buf := make([]byte, maxSendmsgSize)
	var fds []int
	got, want := 0, -1
	for got != want {
		oob := make([]byte, unix.CmsgSpace(4))
		n, oobn, flags, _, err := e.conn.ReadMsgUnix(buf[got:min(len(buf), got+maxSendmsgSize)], oob)
		if err != nil {
			closeAll(fds)
			return Message{}, -1, err
		}
		more, cerr := parseRights(oob[:oobn])
		fds = append(fds, more...)
		if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			closeAll(fds)
			return Message{}, -1, fmt.Errorf("recvmsg() left msg_flags = %d", flags)
		}
		if cerr != nil {
			closeAll(fds)
			return Message{}, -1, cerr
		}
		if want < 0 {
			if n < headerSize {
				closeAll(fds)
				return Message{}, -1, errors.New("received a brokenly tiny message fragment")
			}
			announced := binary.BigEndian.Uint64(buf)
			if announced > maxMessageSize {
				closeAll(fds)
				return Message{}, -1, fmt.Errorf("length header announces %d bytes, more than %d", announced, maxMessageSize)
			}
			want = headerSize + int(announced)
			if want > len(buf) {
				buf = append(buf, make([]byte, want-len(buf))...)
			}
		}
		got += n
		if got > want {
			closeAll(fds)
			return Message{}, -1, errors.New("received a length+protobuf message not aligned to start of sendmsg()")
		}
	}
	m, err := Decode(buf[:got])
	if err != nil {
		closeAll(fds)
		return Message{}, -1, err
	}
	switch {
	case len(fds) == 0 && !m.HasFD:
		return m, -1, nil
	case len(fds) == 1 && m.HasFD && m.Type == ReplyPassListenSocket:
		return m, fds[0], nil
	}
	closeAll(fds)
	return Message{}, -1, errors.New("recvmsg() came with control data when the message's purpose was not to pass a file descriptor")
}

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, cm := range msgs {
		got, err := unix.ParseUnixRights(&cm)
		if err != nil {
			closeAll(fds)
			return nil, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}
