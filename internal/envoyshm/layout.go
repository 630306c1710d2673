// Package envoyshm is the layout of Envoy's hot restart shared memory
// region, as Envoy lays it out on this platform, so that fakeenvoy and any
// program that maps the region (the restarter's INITIALIZING gate) read
// and write the same bytes Envoy does.
//
// Envoy's region (source/server/hot_restart_impl.h) is
//
//	struct SharedMemory {
//	  uint64_t size_;                    // sizeof(SharedMemory)
//	  uint64_t version_;                 // HOT_RESTART_VERSION, 11
//	  pthread_mutex_t log_lock_;
//	  pthread_mutex_t access_log_lock_;
//	  std::atomic<uint64_t> flags_;      // bit 0: INITIALIZING
//	};
//
// so its size follows the C library's pthread_mutex_t: 104 bytes on
// x86_64, 120 on aarch64. The hot restart version string is
// "<version_>.<size>", "11.104" on x86_64.
//
// The region is /dev/shm/envoy_shared_memory_<base id * 10>. Epoch 0
// unlinks any old one and creates it; no process removes it at exit.
// Every starting epoch sets INITIALIZING with an atomic fetch-or and fails
// if it was already set; the epoch clears it once it has told its parent
// to drain. A reader must check size_ and version_ before trusting flags_.
// The two mutexes are glibc's robust process-shared pthread mutexes
// (mutex.go).
package envoyshm

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Version is Envoy's HOT_RESTART_VERSION, stored in version_.
const Version uint64 = 11

// Offsets of the fields, and the region's size, on this platform.
const (
	OffsetSize          = 0
	OffsetVersion       = 8
	OffsetLogLock       = 16
	OffsetAccessLogLock = OffsetLogLock + PthreadMutexSize
	// OffsetFlags is where std::atomic<uint64_t> lands: 8-byte aligned.
	OffsetFlags = (OffsetAccessLogLock + PthreadMutexSize + 7) &^ 7
	// Size is sizeof(SharedMemory): 104 on x86_64, 120 on aarch64.
	Size = OffsetFlags + 8
)

// FlagInitializing is bit 0 of flags_: an epoch is starting.
const FlagInitializing uint64 = 1

// Name is the POSIX shared memory name for baseID, scaled by ten as Envoy
// scales it: /envoy_shared_memory_<baseID*10>.
func Name(baseID uint32) string {
	return fmt.Sprintf("/envoy_shared_memory_%d", uint64(baseID)*10)
}

// Path is where Linux keeps the region named by Name.
func Path(baseID uint32) string { return "/dev/shm" + Name(baseID) }

// VersionString renders a hot restart version as Envoy does,
// "<version>.<sizeof(SharedMemory)>".
func VersionString(version uint64) string { return fmt.Sprintf("%d.%d", version, Size) }

// MismatchError is Check's failure; its text is Envoy's RELEASE_ASSERT
// message for the field ("size" or "version") that differs.
type MismatchError struct{ Field string }

func (e *MismatchError) Error() string {
	what := "version"
	if e.Field == "size" {
		what = "SharedMemory size"
	}
	return "Hot restart " + what + " mismatch! You must have hot restarted into a not-hot-restart-compatible new version of Envoy."
}

// Region is a view of a mapped region: mem must be at least Size bytes,
// 8-byte aligned (an mmap'd page is), and stay mapped while in use.
type Region struct{ mem []byte }

// NewRegion wraps mem, which must be at least Size bytes.
func NewRegion(mem []byte) (Region, error) {
	if len(mem) < Size {
		return Region{}, fmt.Errorf("shared memory region of %d bytes, want %d", len(mem), Size)
	}
	return Region{mem: mem}, nil
}

func (r Region) word(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&r.mem[off]))
}

// Init writes size_ and version_ and initialises the two mutexes, as
// epoch 0 does after creating the region (all zero, as truncated).
func (r Region) Init(version uint64) {
	r.word(OffsetSize).Store(Size)
	r.word(OffsetVersion).Store(version)
	r.LogLock().initRobustShared()
	r.AccessLogLock().initRobustShared()
}

// Check compares size_ and version_ with this build's, as a later epoch does.
func (r Region) Check(version uint64) error {
	if r.word(OffsetSize).Load() != Size {
		return &MismatchError{Field: "size"}
	}
	if r.word(OffsetVersion).Load() != version {
		return &MismatchError{Field: "version"}
	}
	return nil
}

// Flags is flags_, for atomic reads and updates.
func (r Region) Flags() *atomic.Uint64 { return r.word(OffsetFlags) }

// SetInitializing is a starting epoch's fetch-or; it reports whether the
// flag was already set (Envoy then refuses to start).
func (r Region) SetInitializing() (wasSet bool) {
	return r.Flags().Or(FlagInitializing)&FlagInitializing != 0
}

// ClearInitializing clears the flag, as an epoch does after telling its
// parent to drain (or as a supervisor healing a dead epoch's flag).
func (r Region) ClearInitializing() { r.Flags().And(^FlagInitializing) }

// Initializing reports the flag.
func (r Region) Initializing() bool { return r.Flags().Load()&FlagInitializing != 0 }
