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
	// SkipHotRestartParentStats is --skip-hot-restart-parent-stats.
	SkipHotRestartParentStats bool
	Version                   uint64
	RetryDelay                time.Duration
}

// HotRestart is one epoch's hot restart state: its four domain sockets
// (main and UDP forwarding, as child and as parent) and the shared memory
// region. The UDP forwarding sockets are bound, as Envoy binds them, and
// otherwise unused: fakeenvoy has no UDP listeners.
type HotRestart struct {
	BaseID  uint32
	Child   *Child
	Parent  *Parent
	Shm     *SharedMemory
	sockets []*Endpoint
}

// Open binds this epoch's sockets and attaches the shared memory region,
// in Envoy's order: the child's main and UDP-forwarding sockets, the
// parent's two, then the region. Errors are *BindError,
// ErrStillInitializing or *FatalError.
func Open(s Settings, log Logger) (*HotRestart, error) {
	scaled := ScaledBaseID(s.BaseID)
	var bound []*Endpoint
	bind := func(path, role string) (*Endpoint, error) {
		ep, err := Bind(SocketName(path, role, s.BaseID, s.Epoch), s.SocketMode, scaled, s.Epoch)
		if err != nil {
			for _, b := range bound {
				b.Close()
			}
			return nil, err
		}
		bound = append(bound, ep)
		return ep, nil
	}
	udpPath := s.SocketPath + "_udp"
	childEP, err := bind(s.SocketPath, "child")
	if err != nil {
		return nil, err
	}
	if _, err := bind(udpPath, "child"); err != nil {
		return nil, err
	}
	parentEP, err := bind(s.SocketPath, "parent")
	if err != nil {
		return nil, err
	}
	if _, err := bind(udpPath, "parent"); err != nil {
		return nil, err
	}
	shm, err := AttachSharedMemory(s.BaseID, s.Epoch, s.Version)
	if err != nil {
		for _, b := range bound {
			b.Close()
		}
		return nil, err
	}
	h := &HotRestart{
		BaseID: s.BaseID,
		Child: &Child{
			ep:         childEP,
			terminated: s.Epoch == 0,
			skipStats:  s.SkipHotRestartParentStats,
			retryDelay: s.RetryDelay,
			log:        log,
		},
		Parent: &Parent{
			ep:        parentEP,
			childName: SocketName(s.SocketPath, "child", s.BaseID, s.Epoch+1),
			log:       log,
		},
		Shm:     shm,
		sockets: bound,
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

// Close closes the domain sockets. The region stays mapped until the
// process exits, as Envoy's does (its mutexes serve the last log lines),
// and stays in /dev/shm after. Call it only on a clean exit.
func (h *HotRestart) Close() {
	for _, ep := range h.sockets {
		ep.Close()
	}
}
