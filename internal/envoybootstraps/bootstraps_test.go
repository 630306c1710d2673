package envoybootstraps

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEveryVariantRendersWithoutPlaceholders(t *testing.T) {
	vs := Variants()
	require.Len(t, vs, 10)
	for _, v := range vs {
		out, err := v.Render("/tmp/t", "/tmp/s")
		require.NoError(t, err, v.Name)
		assert.NotContains(t, string(out), "{{", v.Name)
	}
}

func TestRenderSubstitutesAsTheHotRestartTest(t *testing.T) {
	v := Variants()[1] // v6
	out, err := v.Render("/tmp/t", "/tmp/s")
	require.NoError(t, err)
	assert.Contains(t, string(out), `address: "::1"`)
	assert.Contains(t, string(out), `enable_reuse_port: "false"`)
	assert.Contains(t, string(out), `dns_lookup_family: "v6_only"`)
	assert.Contains(t, string(out), `port_value: "0"`)
	assert.Contains(t, string(out), `symlink_root: "/tmp/t/test/common/runtime/test_data/current"`)
	uds, err := Variants()[2].Render("/tmp/t", "/tmp/s")
	require.NoError(t, err)
	assert.Contains(t, string(uds), `path: "/tmp/s/unix-sockets.listener_0"`)
}

func TestRetiredIOURingFieldFollowsTheAPI(t *testing.T) {
	on, err := Variants()[5].Render("/tmp/t", "/tmp/s") // v4_io_uring
	require.NoError(t, err)
	assert.Contains(t, string(on), "    io_uring_options: {}\n")
	off, err := Variants()[0].Render("/tmp/t", "/tmp/s")
	require.NoError(t, err)
	assert.NotContains(t, string(off), "io_uring")
	raw, err := Verbatim("server.yaml")
	require.NoError(t, err)
	assert.Contains(t, string(raw), `enable_io_uring: "{{ enable_io_uring }}"`)
}
