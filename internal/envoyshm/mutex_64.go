//go:build linux && (riscv64 || ppc64 || ppc64le || s390x || loong64 || mips64 || mips64le)

package envoyshm

// PthreadMutexSize is glibc's sizeof(pthread_mutex_t) on these 64-bit ports.
const PthreadMutexSize = 40
