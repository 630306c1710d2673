package envoyshm

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The sizes Envoy's own builds report as their hot restart version.
func TestSizeIsEnvoys(t *testing.T) {
	want := map[string]int{"amd64": 104, "arm64": 120}[runtime.GOARCH]
	if want == 0 { // other ports: no Envoy build to compare with
		want = 16 + 2*PthreadMutexSize + 8
	}
	assert.Equal(t, want, Size)
	assert.Equal(t, 16+2*PthreadMutexSize, OffsetFlags)
	assert.Equal(t, fmt.Sprintf("11.%d", want), VersionString(11))
}

func TestNames(t *testing.T) {
	assert.Equal(t, "/envoy_shared_memory_0", Name(0))
	assert.Equal(t, "/envoy_shared_memory_70", Name(7))
	assert.Equal(t, "/envoy_shared_memory_42949672950", Name(1<<32-1), "no overflow")
	assert.Equal(t, "/dev/shm/envoy_shared_memory_70", Path(7))
}

// The bytes are where Envoy's struct has them: a program writing flags_
// at OffsetFlags is seen by another reading it through a Region.
func TestRegionFieldsAndFlag(t *testing.T) {
	mem := make([]uint64, Size/8) // 8-byte aligned, as a mapping is
	b := unsafeBytes(mem)
	r, err := NewRegion(b)
	require.NoError(t, err)
	_, err = NewRegion(b[:Size-1])
	assert.Error(t, err)

	r.Init(Version)
	assert.Equal(t, uint64(Size), mem[OffsetSize/8])
	assert.Equal(t, Version, mem[OffsetVersion/8])
	assert.NoError(t, r.Check(Version))
	assert.EqualError(t, r.Check(12), "Hot restart version mismatch! You must have hot restarted into a not-hot-restart-compatible new version of Envoy.")
	mem[OffsetSize/8] = 32
	assert.EqualError(t, r.Check(Version), "Hot restart SharedMemory size mismatch! You must have hot restarted into a not-hot-restart-compatible new version of Envoy.")

	assert.False(t, r.SetInitializing(), "first epoch")
	assert.Equal(t, FlagInitializing, mem[OffsetFlags/8])
	assert.True(t, r.SetInitializing(), "second epoch while the first initialises")
	assert.True(t, r.Initializing())
	mem[OffsetFlags/8] |= 1 << 5 // other bits survive
	r.ClearInitializing()
	assert.False(t, r.Initializing())
	assert.Equal(t, uint64(1<<5), mem[OffsetFlags/8])
}

func unsafeBytes(words []uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
}
