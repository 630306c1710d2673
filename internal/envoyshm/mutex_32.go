//go:build linux && (386 || arm || mips || mipsle)

package envoyshm

// glibc's pthread_mutex_t on 32-bit ports, whose robust list is singly
// linked (__pthread_slist_t).
const (
	// PthreadMutexSize is sizeof(pthread_mutex_t).
	PthreadMutexSize = 24
	// MutexOffsetUsers and MutexOffsetKind are __nusers and __kind.
	MutexOffsetUsers = 16
	MutexOffsetKind  = 12
	// MutexOffsetListPrev is -1: there is no __list.__prev.
	MutexOffsetListPrev = -1
	// MutexOffsetListNext is __list.__next: the link of the robust list
	// of the thread holding it.
	MutexOffsetListNext = 20
)
