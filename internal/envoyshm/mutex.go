package envoyshm

import (
	"sync/atomic"
	"unsafe"
)

// The two pthread_mutex_t of the region are initialised by epoch 0 as
// Envoy's initializeMutex does (source/server/hot_restart_impl.cc):
// PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST, default (normal) type.
// Every epoch then takes log_lock_ around each write of a log line to
// stderr and access_log_lock_ around each write of an access log or
// --log-path buffer to its file, so all epochs share them.
//
// glibc lays such a mutex out as struct __pthread_mutex_s and locks it with
// the kernel's robust futex protocol: the lock word (__lock, offset 0) is 0
// when free, else the owning thread's TID, with FutexWaiters set once a
// thread sleeps on it (FUTEX_WAIT, not private: other processes share the
// word) and FutexOwnerDied set by the kernel when the owner exits holding
// it. The owner links the mutex into its thread's robust list through
// __list, so that the kernel finds it at exit.

// Offsets of the 32-bit fields glibc's mutexes share on every port; the
// others are per GOARCH (mutex_*.go).
const (
	MutexOffsetLock  = 0 // __lock: the futex word
	MutexOffsetCount = 4 // __count
	MutexOffsetOwner = 8 // __owner: the owner's TID, or a consistency mark
)

// MutexKindRobustShared is __kind as pthread_mutex_init leaves it for
// Envoy's attributes: PTHREAD_MUTEX_ROBUST_NORMAL_NP (16) with
// PTHREAD_MUTEX_PSHARED_BIT (128).
const MutexKindRobustShared = 16 | 128

// Lock word bits (linux/futex.h).
const (
	FutexWaiters   uint32 = 0x80000000
	FutexOwnerDied uint32 = 0x40000000
	FutexTIDMask   uint32 = 0x3fffffff
)

// RobustFutexOffset is a robust list's futex_offset for entries that point
// at __list.__next, as glibc's do: where the lock word is relative to the
// entry.
const RobustFutexOffset = MutexOffsetLock - MutexOffsetListNext

// Mutex is a view of one of the region's pthread_mutex_t.
type Mutex struct{ mem []byte }

// LogLock is log_lock_.
func (r Region) LogLock() Mutex {
	return Mutex{mem: r.mem[OffsetLogLock : OffsetLogLock+PthreadMutexSize]}
}

// AccessLogLock is access_log_lock_.
func (r Region) AccessLogLock() Mutex {
	return Mutex{mem: r.mem[OffsetAccessLogLock : OffsetAccessLogLock+PthreadMutexSize]}
}

// initRobustShared is pthread_mutex_init with Envoy's attributes on memory
// that is all zero, as a freshly truncated region is.
func (m Mutex) initRobustShared() { m.Field(MutexOffsetKind).Store(MutexKindRobustShared) }

// Field is the 32-bit field at off (MutexOffsetLock, MutexOffsetKind, ...).
func (m Mutex) Field(off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&m.mem[off]))
}

// Word is the lock word.
func (m Mutex) Word() *atomic.Uint32 { return m.Field(MutexOffsetLock) }

// Link is the pointer-sized field at off (MutexOffsetListNext or
// MutexOffsetListPrev), holding an address of the owner's process.
func (m Mutex) Link(off int) *atomic.Uintptr {
	return (*atomic.Uintptr)(unsafe.Pointer(&m.mem[off]))
}

// RobustEntry is the address a robust list links for this mutex:
// &__list.__next, in this process's mapping.
func (m Mutex) RobustEntry() uintptr { return uintptr(unsafe.Pointer(&m.mem[MutexOffsetListNext])) }

// MutexState is what the lock word says.
type MutexState struct {
	// OwnerTID is the thread holding the mutex (a TID in its PID
	// namespace), 0 when free.
	OwnerTID int
	// Waiters: a thread sleeps (or slept) waiting for it.
	Waiters bool
	// OwnerDied: its owner exited holding it and nobody took it since.
	OwnerDied bool
}

// State reads the lock word, for observers such as tests and diagnostics.
func (m Mutex) State() MutexState {
	w := m.Word().Load()
	return MutexState{
		OwnerTID:  int(w & FutexTIDMask),
		Waiters:   w&FutexWaiters != 0,
		OwnerDied: w&FutexOwnerDied != 0,
	}
}
