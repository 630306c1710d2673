package envoyshm

// PthreadMutexSize is glibc's sizeof(pthread_mutex_t) on x86_64.
const PthreadMutexSize = 40
