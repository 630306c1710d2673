package hotrestart

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Settings are the options hot restart needs.
type Settings struct {
	BaseID                   uint32
	Epoch                    uint32
	SocketPath               string
	SocketMode               uint32
	SkipHotRestartOnNoParent bool
	Version                  uint64
	RetryDelay               time.Duration
}

// HotRestart is one epoch's hot restart state: its two domain sockets and
// the shared memory region.
type HotRestart struct {
	BaseID uint32
	Child  *Child
	Parent *Parent
	Shm    *SharedMemory
}

// Open binds this epoch's child then parent socket and attaches the shared
// memory region, in Envoy's order. Errors are *BindError,
// ErrStillInitializing or *FatalError.
func Open(s Settings, log Logger) (*HotRestart, error) {
	scaled := ScaledBaseID(s.BaseID)
	id := s.Epoch % MaxConcurrentProcesses
	childEP, err := Bind(SocketName(s.SocketPath, "child", s.BaseID, s.Epoch), s.SocketMode, scaled, id)
	if err != nil {
		return nil, err
	}
	parentEP, err := Bind(SocketName(s.SocketPath, "parent", s.BaseID, s.Epoch), s.SocketMode, scaled, id)
	if err != nil {
		childEP.Close()
		return nil, err
	}
	shm, err := AttachSharedMemory(s.BaseID, s.Epoch, s.Version)
	if err != nil {
		childEP.Close()
		parentEP.Close()
		return nil, err
	}
	h := &HotRestart{
		BaseID: s.BaseID,
		Child: &Child{
			ep:         childEP,
			terminated: s.Epoch == 0,
			retryDelay: s.RetryDelay,
			log:        log,
		},
		Parent: &Parent{
			ep:        parentEP,
			childName: SocketName(s.SocketPath, "child", s.BaseID, s.Epoch+1),
			log:       log,
		},
		Shm: shm,
	}
	if s.Epoch > 0 {
		h.Child.parentName = SocketName(s.SocketPath, "parent", s.BaseID, s.Epoch-1)
		if s.SkipHotRestartOnNoParent {
			h.Child.TestConnection()
		}
	}
	return h, nil
}

// ErrNoDynamicBaseID is Envoy's failure after 100 taken base ids.
var ErrNoDynamicBaseID = errors.New("unable to select a dynamic base id")

// OpenDynamic tries up to 100 random base ids for epoch 0, moving on only
// when a domain socket name is taken, as Envoy does.
func OpenDynamic(s Settings, log Logger, random func() uint32) (*HotRestart, error) {
	if random == nil {
		random = rand.Uint32
	}
	for i := 0; i < 100; i++ {
		// Envoy masks to leave head room for the scaling by ten.
		s.BaseID = random() & 0x0FFFFFFF
		h, err := Open(s, log)
		var bindErr *BindError
		if errors.As(err, &bindErr) && bindErr.InUse() {
			continue
		}
		return h, err
	}
	return nil, ErrNoDynamicBaseID
}

// Close closes both sockets and unmaps the region, which stays in
// /dev/shm as Envoy's does. Call it only on a clean exit.
func (h *HotRestart) Close() {
	h.Child.ep.Close()
	h.Parent.ep.Close()
	h.Shm.Unmap()
}
