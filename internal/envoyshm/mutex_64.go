//go:build amd64 || (linux && (riscv64 || ppc64 || ppc64le || s390x || loong64 || mips64 || mips64le))

package envoyshm

// glibc's pthread_mutex_t on x86_64 (sysdeps/x86/nptl/bits/struct_mutex.h)
// and on these other 64-bit ports (the generic sysdeps/nptl/bits/struct_mutex.h):
// the same layout.
const (
	// PthreadMutexSize is sizeof(pthread_mutex_t).
	PthreadMutexSize = 40
	// MutexOffsetUsers and MutexOffsetKind are __nusers and __kind.
	MutexOffsetUsers = 12
	MutexOffsetKind  = 16
	// MutexOffsetListPrev and MutexOffsetListNext are __list.__prev and
	// __list.__next: the links of the robust list of the thread holding it.
	MutexOffsetListPrev = 24
	MutexOffsetListNext = 32
)
