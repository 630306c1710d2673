package hotrestart

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Version is the built-in hot restart version; the string form adds the
// region size, as Envoy's "<version>.<sizeof(SharedMemory)>" does.
const Version uint64 = 11

// Layout of the region: four aligned uint64 words.
const (
	offSize         = 0
	offVersion      = 8
	offFlags        = 16
	offLive         = 24
	sharedMemSize   = 32
	flagInitializng = 1
)

// VersionString renders a hot restart version as Envoy does.
func VersionString(version uint64) string {
	return fmt.Sprintf("%d.%d", version, sharedMemSize)
}

// ErrStillInitializing is Envoy's refusal to start while the previous
// epoch (or a child that died initialising) holds the INITIALIZING flag.
var ErrStillInitializing = errors.New("previous envoy process is still initializing")

// FatalError is a failure Envoy reports with PANIC or RELEASE_ASSERT:
// the process aborts (SIGABRT) rather than exiting.
type FatalError struct{ Message string }

func (e *FatalError) Error() string { return e.Message }

// SharedMemory is the mapped region shared by every epoch of a base id.
type SharedMemory struct {
	name string
	mem  []byte
}

func shmPath(name string) string { return "/dev/shm" + name }

// AttachSharedMemory opens the region as Envoy does: epoch 0 unlinks and
// creates it, later epochs open it and check size and version. Then it
// sets INITIALIZING, failing with ErrStillInitializing if it was set.
// Every attached process is counted so that the last one to detach
// cleanly can remove the region.
func AttachSharedMemory(baseID, epoch uint32, version uint64) (*SharedMemory, error) {
	name := SharedMemoryName(baseID)
	flags := unix.O_RDWR | unix.O_CLOEXEC | unix.O_NOFOLLOW
	if epoch == 0 {
		flags |= unix.O_CREAT | unix.O_EXCL
		_ = unix.Unlink(shmPath(name))
	}
	fd, err := unix.Open(shmPath(name), flags, 0o600)
	if err != nil {
		return nil, &FatalError{fmt.Sprintf("cannot open shared memory region %s check user permissions. Error: %s", name, errText(err))}
	}
	defer unix.Close(fd)
	if epoch == 0 {
		if err := unix.Ftruncate(fd, sharedMemSize); err != nil {
			return nil, &FatalError{fmt.Sprintf("ftruncate %s: %v", name, err)}
		}
	} else {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Size < sharedMemSize {
			return nil, &FatalError{"Hot restart SharedMemory size mismatch! You must have hot restarted into a not-hot-restart-compatible new version of Envoy."}
		}
	}
	mem, err := unix.Mmap(fd, 0, sharedMemSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, &FatalError{fmt.Sprintf("mmap %s: %v", name, err)}
	}
	s := &SharedMemory{name: name, mem: mem}
	if epoch == 0 {
		s.word(offSize).Store(sharedMemSize)
		s.word(offVersion).Store(version)
	} else {
		if s.word(offSize).Load() != sharedMemSize {
			s.unmap()
			return nil, &FatalError{"Hot restart SharedMemory size mismatch! You must have hot restarted into a not-hot-restart-compatible new version of Envoy."}
		}
		if s.word(offVersion).Load() != version {
			s.unmap()
			return nil, &FatalError{"Hot restart version mismatch! You must have hot restarted into a not-hot-restart-compatible new version of Envoy."}
		}
	}
	if old := s.word(offFlags).Or(flagInitializng); old&flagInitializng != 0 {
		s.unmap()
		return nil, ErrStillInitializing
	}
	s.word(offLive).Add(1)
	return s, nil
}

func errText(err error) string {
	if errors.Is(err, unix.ENOENT) {
		return "No such file or directory"
	}
	return err.Error()
}

func (s *SharedMemory) word(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&s.mem[off]))
}

// Name is the region's POSIX name.
func (s *SharedMemory) Name() string { return s.name }

// Initializing reports the INITIALIZING flag.
func (s *SharedMemory) Initializing() bool { return s.word(offFlags).Load()&flagInitializng != 0 }

// ClearInitializing lets the next epoch start.
func (s *SharedMemory) ClearInitializing() { s.word(offFlags).And(^uint64(flagInitializng)) }

// Detach unmaps the region; the last process to detach removes it. A
// process that dies without detaching leaves it behind, as Envoy always does.
func (s *SharedMemory) Detach() {
	if s.word(offLive).Add(^uint64(0)) == 0 {
		_ = unix.Unlink(shmPath(s.name))
	}
	s.unmap()
}

func (s *SharedMemory) unmap() {
	if s.mem != nil {
		_ = unix.Munmap(s.mem)
		s.mem = nil
	}
}

// RegionExists reports whether the region for baseID is present.
func RegionExists(baseID uint32) bool {
	_, err := os.Stat(shmPath(SharedMemoryName(baseID)))
	return err == nil
}
