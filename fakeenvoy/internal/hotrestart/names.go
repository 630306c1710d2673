// Package hotrestart is fakeenvoy's hot restart: Envoy's names, sequence,
// failure behaviour and SCM_RIGHTS socket passing, over a wire format of
// this project's own. wire.go frames messages, parent.go answers a newer
// epoch, child.go drives an older one, shm.go maps the shared region (its
// flags), mutex.go takes its two process-shared mutexes.
package hotrestart

import (
	"fmt"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
)

// MaxConcurrentProcesses is why socket ids wrap at 3: epoch N+1 starting
// makes N terminate N-1, so at most three epochs are alive.
const MaxConcurrentProcesses = 3

// ScaledBaseID is the base id times ten, as Envoy scales it so that
// neighbouring base ids do not share socket names.
func ScaledBaseID(baseID uint32) uint64 { return uint64(baseID) * 10 }

// SocketName is Envoy's domain socket name for role ("parent" or "child")
// of epoch: <socketPath>_<role>_<base*10 + epoch%3>. A leading '@' means
// the abstract namespace.
func SocketName(socketPath, role string, baseID, epoch uint32) string {
	return fmt.Sprintf("%s_%s_%d", socketPath, role, ScaledBaseID(baseID)+uint64(epoch%MaxConcurrentProcesses))
}

// SharedMemoryName is the POSIX shared memory name, /envoy_shared_memory_<base*10>.
func SharedMemoryName(baseID uint32) string { return envoyshm.Name(baseID) }
