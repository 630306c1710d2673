package hotrestart

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
)

// Version is the built-in hot restart version, Envoy's HOT_RESTART_VERSION.
const Version = envoyshm.Version

// VersionString renders a hot restart version as Envoy does,
// "<version>.<sizeof(SharedMemory)>" ("11.104" on x86_64).
func VersionString(version uint64) string { return envoyshm.VersionString(version) }

// ErrStillInitializing is Envoy's refusal to start while the previous
// epoch (or a child that died initialising) holds the INITIALIZING flag.
var ErrStillInitializing = errors.New("previous envoy process is still initializing")

// FatalError is a failure Envoy reports with PANIC or RELEASE_ASSERT:
// the process aborts (SIGABRT) rather than exiting.
type FatalError struct{ Message string }

func (e *FatalError) Error() string { return e.Message }

// SharedMemory is the mapped region shared by every epoch of a base id,
// laid out exactly as Envoy's (see internal/envoyshm), with its two
// process-shared mutexes.
type SharedMemory struct {
	name          string
	mem           []byte
	region        envoyshm.Region
	logLock       *ProcessSharedMutex
	accessLogLock *ProcessSharedMutex
}

// AttachSharedMemory opens the region as Envoy does: epoch 0 unlinks any
// old one and creates it, later epochs open it and check size and version.
// Then it sets INITIALIZING with a fetch-or, failing with
// ErrStillInitializing if it was already set (and leaving it set). Once it
// has succeeded, the region stays mapped for the life of the process, as
// Envoy's: the mutexes in it are in use until the end.
func AttachSharedMemory(baseID, epoch uint32, version uint64) (*SharedMemory, error) {
	name := envoyshm.Name(baseID)
	path := envoyshm.Path(baseID)
	flags := unix.O_RDWR | unix.O_CLOEXEC | unix.O_NOFOLLOW
	if epoch == 0 {
		flags |= unix.O_CREAT | unix.O_EXCL
		_ = unix.Unlink(path)
	}
	fd, err := unix.Open(path, flags, 0o600)
	if err != nil {
		return nil, &FatalError{fmt.Sprintf("cannot open shared memory region %s check user permissions. Error: %s", name, errText(err))}
	}
	defer unix.Close(fd)
	if epoch == 0 {
		if err := unix.Ftruncate(fd, envoyshm.Size); err != nil {
			return nil, &FatalError{fmt.Sprintf("ftruncate %s: %v", name, err)}
		}
	}
	// Envoy maps sizeof(SharedMemory) whatever the file's size; a shorter
	// file would fault on access, so check first rather than die by SIGBUS.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size < envoyshm.Size {
		return nil, &FatalError{(&envoyshm.MismatchError{Field: "size"}).Error()}
	}
	mem, err := unix.Mmap(fd, 0, envoyshm.Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, &FatalError{fmt.Sprintf("mmap %s: %v", name, err)}
	}
	region, err := envoyshm.NewRegion(mem)
	if err != nil {
		_ = unix.Munmap(mem)
		return nil, &FatalError{err.Error()}
	}
	s := &SharedMemory{name: name, mem: mem, region: region}
	if epoch == 0 {
		region.Init(version)
	} else if err := region.Check(version); err != nil {
		s.Unmap()
		return nil, &FatalError{err.Error()}
	}
	if region.SetInitializing() {
		s.Unmap()
		return nil, ErrStillInitializing
	}
	if s.logLock, err = NewProcessSharedMutex(region.LogLock()); err == nil {
		s.accessLogLock, err = NewProcessSharedMutex(region.AccessLogLock())
	}
	if err != nil {
		return nil, &FatalError{err.Error()}
	}
	return s, nil
}

func errText(err error) string {
	if errors.Is(err, unix.ENOENT) {
		return "No such file or directory"
	}
	return err.Error()
}

// Name is the region's POSIX name.
func (s *SharedMemory) Name() string { return s.name }

// Initializing reports the INITIALIZING flag.
func (s *SharedMemory) Initializing() bool { return s.region.Initializing() }

// ClearInitializing lets the next epoch start.
func (s *SharedMemory) ClearInitializing() { s.region.ClearInitializing() }

// LogLock is log_lock_, which Envoy's stderr log sink holds around each
// line it writes.
func (s *SharedMemory) LogLock() *ProcessSharedMutex { return s.logLock }

// AccessLogLock is access_log_lock_, which Envoy's access log manager
// holds around each write to a log file.
func (s *SharedMemory) AccessLogLock() *ProcessSharedMutex { return s.accessLogLock }

// Unmap unmaps the region; only for a region whose mutexes nobody uses
// (tests, failed attaches). Nobody removes it: Envoy leaves it in /dev/shm
// and the next epoch 0 replaces it.
func (s *SharedMemory) Unmap() {
	if s.mem != nil {
		_ = unix.Munmap(s.mem)
		s.mem = nil
	}
}

// RegionExists reports whether the region for baseID is present.
func RegionExists(baseID uint32) bool {
	_, err := os.Stat(envoyshm.Path(baseID))
	return err == nil
}
