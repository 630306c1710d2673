//go:build linux && (386 || arm || mips || mipsle)

package envoyshm

// PthreadMutexSize is glibc's sizeof(pthread_mutex_t) on 32-bit ports.
const PthreadMutexSize = 24
