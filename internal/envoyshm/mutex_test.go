package envoyshm

import (
	"encoding/binary"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Mirrors source/server/hot_restart_impl.cc initializeMutex: epoch 0 leaves
// both mutexes as glibc's pthread_mutex_init does with
// PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST (the bytes glibc 2.36
// writes on x86_64: all zero but __kind, 0x90), and size_, version_ and
// flags_ where they were.
func TestInitLaysOutEnvoysMutexes(t *testing.T) {
	mem := make([]uint64, Size/8)
	b := unsafeBytes(mem)
	r, err := NewRegion(b)
	require.NoError(t, err)
	r.Init(Version)

	want := make([]byte, PthreadMutexSize)
	binary.LittleEndian.PutUint32(want[MutexOffsetKind:], MutexKindRobustShared)
	if runtime.GOARCH == "amd64" {
		assert.Equal(t, byte(0x90), want[16], "glibc's __kind byte")
	}
	assert.Equal(t, want, b[OffsetLogLock:OffsetLogLock+PthreadMutexSize], "log_lock_")
	assert.Equal(t, want, b[OffsetAccessLogLock:OffsetAccessLogLock+PthreadMutexSize], "access_log_lock_")
	assert.Equal(t, uint64(Size), mem[0])
	assert.Equal(t, Version, mem[1])
	assert.Zero(t, mem[OffsetFlags/8])
}

// The lock word as the kernel's robust futexes and glibc write it: owner
// TID in the low bits, FUTEX_WAITERS and FUTEX_OWNER_DIED on top.
func TestMutexState(t *testing.T) {
	mem := make([]uint64, Size/8)
	r, err := NewRegion(unsafeBytes(mem))
	require.NoError(t, err)
	m := r.AccessLogLock()
	assert.Equal(t, MutexState{}, m.State())
	m.Word().Store(4242 | FutexWaiters)
	assert.Equal(t, MutexState{OwnerTID: 4242, Waiters: true}, m.State())
	m.Word().Store(FutexOwnerDied)
	assert.Equal(t, MutexState{OwnerDied: true}, m.State())
	assert.Zero(t, r.LogLock().Word().Load(), "the other mutex")

	assert.Equal(t, uintptr(unsafe.Pointer(&unsafeBytes(mem)[OffsetAccessLogLock+MutexOffsetListNext])), m.RobustEntry())
	assert.Equal(t, int(m.RobustEntry())+RobustFutexOffset, int(uintptr(unsafe.Pointer(m.Word()))), "futex_offset leads from the entry to the word")
}
