package envoyshm

// glibc's pthread_mutex_t on aarch64 (the generic
// sysdeps/nptl/bits/struct_mutex.h, padded to 48 bytes).
const (
	// PthreadMutexSize is sizeof(pthread_mutex_t).
	PthreadMutexSize = 48
	// MutexOffsetUsers and MutexOffsetKind are __nusers and __kind.
	MutexOffsetUsers = 12
	MutexOffsetKind  = 16
	// MutexOffsetListPrev and MutexOffsetListNext are __list.__prev and
	// __list.__next: the links of the robust list of the thread holding it.
	MutexOffsetListPrev = 24
	MutexOffsetListNext = 32
)
