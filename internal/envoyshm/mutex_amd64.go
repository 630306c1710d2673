package envoyshm

// glibc's pthread_mutex_t on x86_64 (sysdeps/x86/nptl/bits/struct_mutex.h).
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
