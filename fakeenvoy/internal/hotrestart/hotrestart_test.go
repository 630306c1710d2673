package hotrestart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
)

func TestNamesFollowEnvoy(t *testing.T) {
	assert.Equal(t, "@envoy_domain_socket_parent_0", SocketName("@envoy_domain_socket", "parent", 0, 0))
	assert.Equal(t, "@envoy_domain_socket_child_52", SocketName("@envoy_domain_socket", "child", 5, 2))
	assert.Equal(t, "@envoy_domain_socket_child_50", SocketName("@envoy_domain_socket", "child", 5, 3), "ids wrap at three epochs")
	assert.Equal(t, "/tmp/hr_parent_71", SocketName("/tmp/hr", "parent", 7, 4))
	assert.Equal(t, "/envoy_shared_memory_0", SharedMemoryName(0))
	assert.Equal(t, "/envoy_shared_memory_42949672950", SharedMemoryName(1<<32-1), "no overflow")
	assert.Equal(t, fmt.Sprintf("11.%d", envoyshm.Size), VersionString(11))
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Type: RequestShutdownAdmin},
		{Type: RequestPassListenSocket, Address: "127.0.0.1:10000", WorkerIndex: 3, Name: "web", ByName: true},
		{Type: ReplyShutdownAdmin, OriginalStartTimeUnixSeconds: 1700000000},
		{Type: ReplyPassListenSocket, HasFD: true},
	} {
		b, err := Encode(m)
		require.NoError(t, err)
		got, err := Decode(b)
		require.NoError(t, err)
		assert.Equal(t, m, got)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode(Message{Type: RequestTerminate})
	require.NoError(t, err)
	for name, b := range map[string][]byte{
		"tiny":          good[:5],
		"short body":    good[:len(good)-1],
		"long body":     append(append([]byte{}, good...), ' '),
		"unknown type":  frame(`{"type":"request.explode"}`),
		"unknown field": frame(`{"type":"request.terminate","x":1}`),
		"trailing":      frame(`{"type":"request.terminate"}{}`),
		"not json":      frame(`nope`),
	} {
		_, err := Decode(b)
		assert.Error(t, err, name)
	}
	_, err = Encode(Message{Type: "bogus"})
	assert.Error(t, err)
}

func frame(body string) []byte {
	b := make([]byte, 8, 8+len(body))
	b[7] = byte(len(body))
	return append(b, body...)
}

// FuzzDecode: the decoder never panics and whatever it accepts re-encodes
// to something it accepts again.
func FuzzDecode(f *testing.F) {
	for _, m := range []Message{{Type: RequestShutdownAdmin}, {Type: RequestPassListenSocket, Address: "127.0.0.1:1"}, {Type: ReplyPassListenSocket, HasFD: true}} {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add(frame(`{"type":"reply.shutdown_admin","original_start_time_unix_seconds":-1}`))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("accepted %q but cannot re-encode: %v", b, err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", again, err)
		}
	})
}

func testSocketPath(t *testing.T) string {
	return fmt.Sprintf("@fakeenvoy_test_%d_%d", os.Getpid(), rand.Uint64())
}

// boundPair binds two endpoints on fresh abstract names; the test's
// cleanup closes them.
func boundPair(t *testing.T) (a, b *Endpoint) {
	t.Helper()
	path := testSocketPath(t)
	a, err := Bind(path+"_a", 0, 0, 0)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	b, err = Bind(path+"_b", 0, 0, 0)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return a, b
}

// A listen socket passed over the wire is the same socket: a connection
// made to it is accepted from the received descriptor.
func TestSendPassesTheSameSocket(t *testing.T) {
	a, b := boundPair(t)

	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(lfd)
	require.NoError(t, unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Listen(lfd, 8))
	sa, err := unix.Getsockname(lfd)
	require.NoError(t, err)

	require.NoError(t, a.Send(b.Name(), Message{Type: ReplyPassListenSocket}, lfd))
	m, fd, err := b.Receive()
	require.NoError(t, err)
	defer unix.Close(fd)
	assert.True(t, m.HasFD)
	got, err := unix.Getsockname(fd)
	require.NoError(t, err)
	assert.Equal(t, sa, got)
}

func TestUnexpectedFDIsRejected(t *testing.T) {
	a, b := boundPair(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	require.NoError(t, a.Send(b.Name(), Message{Type: RequestTerminate}, int(r.Fd())))
	_, fd, err := b.Receive()
	assert.Error(t, err)
	assert.Equal(t, -1, fd)
}

func TestSendToNobodyIsRefused(t *testing.T) {
	a, err := Bind(testSocketPath(t), 0, 0, 0)
	require.NoError(t, err)
	defer a.Close()
	err = a.Send(testSocketPath(t), Message{Type: RequestTerminate}, -1)
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "%v", err)
}

func TestBindInUse(t *testing.T) {
	name := testSocketPath(t)
	a, err := Bind(name, 0, 50, 2)
	require.NoError(t, err)
	defer a.Close()
	_, err = Bind(name, 0, 50, 2)
	var bindErr *BindError
	require.ErrorAs(t, err, &bindErr)
	assert.True(t, bindErr.InUse())
	assert.Equal(t, "unable to bind domain socket with base_id=50, id=2, errno=98 (see --base-id option)", err.Error())
}

func TestPathSocketModeAndRemoval(t *testing.T) {
	name := filepath.Join(t.TempDir(), "s")
	a, err := Bind(name, 0o600, 0, 0)
	require.NoError(t, err)
	fi, err := os.Stat(name)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.NoError(t, a.Close())
	_, err = os.Stat(name)
	assert.True(t, os.IsNotExist(err))
}

// Mirrors source/server/hot_restarting_base.cc RpcStream::bindDomainSocket
// and createDomainSocketAddress: the mode is set with fchmod on the socket
// before bind, so the umask still clears bits of the file bind creates
// (a chmod after bind would not). The tests of this package run one at a
// time, so the process-wide umask can be changed here.
func TestSocketModeGoesThroughTheUmask(t *testing.T) {
	for _, tc := range []struct {
		umask, mode int
		want        os.FileMode
	}{
		{0o022, 0o666, 0o644},
		{0o027, 0o660, 0o640},
		{0o077, 0o600, 0o600},
		{0o000, 0o640, 0o640},
	} {
		old := unix.Umask(tc.umask)
		name := filepath.Join(t.TempDir(), "s")
		a, err := Bind(name, uint32(tc.mode), 0, 0)
		unix.Umask(old)
		require.NoError(t, err)
		fi, err := os.Stat(name)
		require.NoError(t, err)
		assert.Equal(t, tc.want, fi.Mode().Perm(), "--socket-mode %o under umask %03o", tc.mode, tc.umask)
		assert.Equal(t, os.ModeSocket, fi.Mode().Type())
		require.NoError(t, a.Close())
	}
}

func TestSharedMemoryLifecycle(t *testing.T) {
	base := 270_000_000 + rand.Uint32N(1_000_000)
	t.Cleanup(func() { _ = unix.Unlink(envoyshm.Path(base)) })

	_, err := AttachSharedMemory(base, 1, Version)
	var fatal *FatalError
	require.ErrorAs(t, err, &fatal, "epoch 1 without a region")
	assert.Contains(t, err.Error(), "cannot open shared memory region /envoy_shared_memory_")

	s0, err := AttachSharedMemory(base, 0, Version)
	require.NoError(t, err)
	fi, err := os.Stat(envoyshm.Path(base))
	require.NoError(t, err)
	assert.Equal(t, int64(envoyshm.Size), fi.Size(), "truncated to sizeof(SharedMemory)")
	assert.True(t, s0.Initializing())
	_, err = AttachSharedMemory(base, 1, Version)
	assert.ErrorIs(t, err, ErrStillInitializing)
	s0.ClearInitializing()

	_, err = AttachSharedMemory(base, 1, Version+1)
	require.ErrorAs(t, err, &fatal)
	assert.Contains(t, err.Error(), "Hot restart version mismatch!")

	s1, err := AttachSharedMemory(base, 1, Version)
	require.NoError(t, err)
	s1.ClearInitializing()
	s0.Unmap()
	s1.Unmap()
	assert.True(t, RegionExists(base), "nobody removes the region, as in Envoy")

	// A later epoch 0 replaces it, whatever state it was left in.
	stale, err := AttachSharedMemory(base, 1, Version)
	require.NoError(t, err)
	stale.Unmap() // dies holding INITIALIZING
	fresh, err := AttachSharedMemory(base, 0, Version)
	require.NoError(t, err, "epoch 0 unlinks and recreates")
	fresh.Unmap()
}

// Another program mapping the region with Envoy's layout reads and writes
// the very flag fakeenvoy uses: the restarter's INITIALIZING gate.
func TestSharedMemoryIsEnvoysLayout(t *testing.T) {
	base := 275_000_000 + rand.Uint32N(1_000_000)
	t.Cleanup(func() { _ = unix.Unlink(envoyshm.Path(base)) })
	s0, err := AttachSharedMemory(base, 0, Version)
	require.NoError(t, err)
	defer s0.Unmap()

	f, err := os.OpenFile(envoyshm.Path(base), os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, envoyshm.Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(t, err)
	defer unix.Munmap(mem)
	assert.Equal(t, uint64(envoyshm.Size), binary.NativeEndian.Uint64(mem[envoyshm.OffsetSize:]))
	assert.Equal(t, uint64(11), binary.NativeEndian.Uint64(mem[envoyshm.OffsetVersion:]))
	assert.Equal(t, envoyshm.FlagInitializing, binary.NativeEndian.Uint64(mem[envoyshm.OffsetFlags:]))

	s0.ClearInitializing()
	assert.Equal(t, uint64(0), binary.NativeEndian.Uint64(mem[envoyshm.OffsetFlags:]))
	outside, err := envoyshm.NewRegion(mem)
	require.NoError(t, err)
	assert.False(t, outside.SetInitializing(), "a supervisor may set or clear it too")
	assert.True(t, s0.Initializing())
}

func TestOpenDynamicSkipsTakenIDs(t *testing.T) {
	path := testSocketPath(t)
	taken := 260_000_000 + rand.Uint32N(1_000_000)
	// Envoy never removes its regions; the test removes the two it makes.
	t.Cleanup(func() {
		os.Remove(envoyshm.Path(taken))
		os.Remove(envoyshm.Path(taken + 1))
	})
	first, err := Open(Settings{BaseID: taken, SocketPath: path, Version: Version}, nopLogger{})
	require.NoError(t, err)
	defer first.Close()

	ids := []uint32{taken, taken, taken + 1}
	h, err := OpenDynamic(Settings{SocketPath: path, Version: Version}, nopLogger{}, func() uint32 {
		id := ids[0]
		ids = ids[1:]
		return id
	})
	require.NoError(t, err)
	defer h.Close()
	assert.Equal(t, taken+1, h.BaseID)

	_, err = OpenDynamic(Settings{SocketPath: path, Version: Version}, nopLogger{}, func() uint32 { return taken })
	assert.ErrorIs(t, err, ErrNoDynamicBaseID)
}

type nopLogger struct{}

func (nopLogger) Info(string, string, ...any)  {}
func (nopLogger) Warn(string, string, ...any)  {}
func (nopLogger) Error(string, string, ...any) {}

// A stats reply longer than one datagram goes out in 4096-byte pieces and
// comes back whole, as Envoy's sendHotRestartMessage and
// receiveHotRestartMessage chunk it.
func TestLongMessageTravelsInPieces(t *testing.T) {
	a, b := boundPair(t)
	gauges := map[string]uint64{}
	for i := range 2000 {
		gauges[fmt.Sprintf("http.listener_%04d.downstream_cx_active", i)] = uint64(i)
	}
	want := Message{Type: ReplyStats, Gauges: gauges, CounterDeltas: map[string]uint64{"c": 1}, NumConnections: 7}
	sent := make(chan error, 1)
	go func() { sent <- a.Send(b.Name(), want, -1) }()
	got, fd, err := b.Receive()
	require.NoError(t, err)
	require.NoError(t, <-sent)
	assert.Equal(t, -1, fd)
	assert.Equal(t, want, got)

	// The next message starts at a datagram of its own.
	require.NoError(t, a.Send(b.Name(), Message{Type: RequestTerminate}, -1))
	got, _, err = b.Receive()
	require.NoError(t, err)
	assert.Equal(t, RequestTerminate, got.Type)
}

// Pieces that do not add up are Envoy's release assertions: a first piece
// too short for the length, or a piece past the announced end.
func TestBrokenPiecesAreRejected(t *testing.T) {
	a, b := boundPair(t)
	raw := func(p []byte) {
		_, err := a.conn.WriteToUnix(p, &net.UnixAddr{Name: b.Name(), Net: "unixgram"})
		require.NoError(t, err)
	}
	raw([]byte{0, 0, 0})
	_, _, err := b.Receive()
	assert.ErrorContains(t, err, "received a brokenly tiny message fragment")

	frame, err := Encode(Message{Type: RequestTerminate})
	require.NoError(t, err)
	raw(append(frame, '}'))
	_, _, err = b.Receive()
	assert.ErrorContains(t, err, "not aligned to start of sendmsg()")
}
