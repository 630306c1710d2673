package envoyshm

// PthreadMutexSize is glibc's sizeof(pthread_mutex_t) on aarch64.
const PthreadMutexSize = 48
