package fakeenvoytest

import (
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
)

func TestStaticBaseIDIsFree(t *testing.T) {
	// Given an id picked as free,
	id := StaticBaseID()
	require.Greater(t, id, uint32(0x0FFFFFFF), "above every dynamic id")
	require.True(t, baseIDFree(id))

	// when a region of that id is left in /dev/shm, then it is not free;
	path := envoyshm.Path(id)
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	require.False(t, baseIDFree(id))
	require.NoError(t, os.Remove(path))
	require.True(t, baseIDFree(id))

	// nor when a domain socket of one of its epochs is bound (abstract, as
	// Envoy's default @envoy_domain_socket is, or a path).
	for _, name := range []string{
		fmt.Sprintf("@envoy_domain_socket_child_%d", uint64(id)*10+2),
		fmt.Sprintf("%s/hr_udp_parent_%d", t.TempDir(), uint64(id)*10),
	} {
		l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		require.NoError(t, err)
		require.False(t, baseIDFree(id), name)
		require.NoError(t, l.Close())
		require.True(t, baseIDFree(id), name)
	}
}
