package hotrestart

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
)

// ProcessSharedMutex is Envoy's ProcessSharedMutex
// (source/server/hot_restart_impl.h): one of the region's pthread mutexes,
// locked with glibc's protocol for a robust process-shared mutex, so it
// blocks across every epoch (and any Envoy) mapping the region, and a
// holder that dies releases it. Like Envoy's, Lock takes over a mutex whose
// owner died (glibc's EOWNERDEAD) and makes it consistent at once.
//
// The kernel releases a dead owner's mutexes by walking the robust list
// its thread registered (set_robust_list). Goroutines move between
// threads, so one OS thread, locked for the life of the process, takes and
// releases the mutex for every caller and keeps the list; callers of this
// process queue on a sync.Mutex before it.
type ProcessSharedMutex struct {
	m     envoyshm.Mutex
	local sync.Mutex // this process's callers, one at a time
	ops   chan bool  // true: lock, false: unlock; run on the owner thread
	done  chan struct{}
	head  *robustListHead
	tid   uint32 // the owner thread
}

// robustListHead is the kernel's struct robust_list_head.
type robustListHead struct {
	list          uintptr // first entry; the head's own address when empty
	futexOffset   int     // the lock word relative to an entry
	listOpPending uintptr // an entry being locked or unlocked
}

// Futex operations (linux/futex.h); without FUTEX_PRIVATE_FLAG, as the
// word is shared between processes.
const (
	futexWait = 0
	futexWake = 1
)

// NewProcessSharedMutex starts the owner thread of m, which must stay
// mapped for the life of the process (Envoy never unmaps the region).
func NewProcessSharedMutex(m envoyshm.Mutex) (*ProcessSharedMutex, error) {
	p := &ProcessSharedMutex{m: m, ops: make(chan bool), done: make(chan struct{}), head: &robustListHead{}}
	ready := make(chan error)
	go p.own(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return p, nil
}

// own runs on the owner thread for the life of the process: its robust
// list names the mutex while it is held, so the thread must never run
// anything else, nor exit holding it but with the process.
func (p *ProcessSharedMutex) own(ready chan<- error) {
	runtime.LockOSThread()
	p.tid = uint32(unix.Gettid())
	p.head.list = uintptr(unsafe.Pointer(&p.head.list))
	p.head.futexOffset = envoyshm.RobustFutexOffset
	if _, _, errno := unix.RawSyscall(unix.SYS_SET_ROBUST_LIST, uintptr(unsafe.Pointer(p.head)), unsafe.Sizeof(*p.head), 0); errno != 0 {
		ready <- fmt.Errorf("set_robust_list: %w", errno)
		return
	}
	ready <- nil
	for lock := range p.ops {
		if lock {
			p.lockHere()
		} else {
			p.unlockHere()
		}
		p.done <- struct{}{}
	}
}

// Lock blocks until this process holds the mutex.
func (p *ProcessSharedMutex) Lock() {
	p.local.Lock()
	p.ops <- true
	<-p.done
}

// Unlock releases it, waking one waiter of any process.
func (p *ProcessSharedMutex) Unlock() {
	p.ops <- false
	<-p.done
	p.local.Unlock()
}

// lockHere is glibc's pthread_mutex_lock for PTHREAD_MUTEX_ROBUST_NORMAL_NP
// followed, on EOWNERDEAD, by Envoy's pthread_mutex_consistent.
func (p *ProcessSharedMutex) lockHere() {
	word := p.m.Word()
	entry := p.m.RobustEntry()
	p.head.listOpPending = entry
	// Once this thread has slept on the word it may share FUTEX_WAITERS
	// with others, so it keeps the bit when it takes the lock.
	var waiters uint32
	var old uint32
	for {
		old = word.Load()
		if old == 0 || old&envoyshm.FutexOwnerDied != 0 {
			// Free, or freed by the kernel for a dead owner.
			if word.CompareAndSwap(old, p.tid|old&envoyshm.FutexWaiters|waiters) {
				break
			}
			continue
		}
		if old&envoyshm.FutexWaiters == 0 && !word.CompareAndSwap(old, old|envoyshm.FutexWaiters) {
			continue
		}
		waiters = envoyshm.FutexWaiters
		futex(word, futexWait, old|envoyshm.FutexWaiters)
	}
	p.m.Field(envoyshm.MutexOffsetCount).Store(1)
	// EOWNERDEAD leaves __owner marked inconsistent; Envoy's
	// pthread_mutex_consistent at once makes it the caller's, as here.
	p.m.Field(envoyshm.MutexOffsetOwner).Store(p.tid)
	if old == 0 { // glibc does not count a dead owner's heir
		p.m.Field(envoyshm.MutexOffsetUsers).Add(1)
	}
	p.enqueue(entry)
	p.head.listOpPending = 0
}

// unlockHere is glibc's pthread_mutex_unlock for a robust mutex.
func (p *ProcessSharedMutex) unlockHere() {
	entry := p.m.RobustEntry()
	p.head.listOpPending = entry
	p.dequeue()
	p.m.Field(envoyshm.MutexOffsetOwner).Store(0)
	p.m.Field(envoyshm.MutexOffsetUsers).Add(^uint32(0))
	if p.m.Word().Swap(0)&envoyshm.FutexWaiters != 0 {
		futex(p.m.Word(), futexWake, 1)
	}
	p.head.listOpPending = 0
}

// enqueue links the held mutex first in the thread's robust list (the only
// entry: the thread holds nothing else), prev and next as glibc sets them.
func (p *ProcessSharedMutex) enqueue(entry uintptr) {
	p.m.Link(envoyshm.MutexOffsetListNext).Store(p.head.list)
	if envoyshm.MutexOffsetListPrev >= 0 {
		p.m.Link(envoyshm.MutexOffsetListPrev).Store(uintptr(unsafe.Pointer(&p.head.list)))
	}
	p.head.list = entry
}

// dequeue unlinks it and clears its links, as glibc does.
func (p *ProcessSharedMutex) dequeue() {
	p.head.list = p.m.Link(envoyshm.MutexOffsetListNext).Load()
	p.m.Link(envoyshm.MutexOffsetListNext).Store(0)
	if envoyshm.MutexOffsetListPrev >= 0 {
		p.m.Link(envoyshm.MutexOffsetListPrev).Store(0)
	}
}

// futex waits while the word holds val (futexWait), or wakes val waiters
// (futexWake). A wait also ends on a signal or when the word changed first;
// callers look at the word again either way, so the result is not needed.
func futex(word *atomic.Uint32, op int, val uint32) {
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), uintptr(op), uintptr(val), 0, 0, 0)
}
