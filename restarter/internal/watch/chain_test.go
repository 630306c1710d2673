package watch

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestChain(t *testing.T) {
	root := t.TempDir()
	real, err := filepath.EvalSymlinks(root) // the temp dir may be under a symlink
	require.NoError(t, err)
	root = real
	at := func(path string) string { return filepath.Join(root, path) }
	for _, dir := range []string{"cm/..2026_1", "etc", "other"} {
		require.NoError(t, os.MkdirAll(at(dir), 0o755))
	}
	write(t, at("cm/..2026_1/envoy.yaml"), "")
	write(t, at("etc/plain.yaml"), "")
	for link, target := range map[string]string{
		"cm/..data":       "..2026_1",
		"cm/envoy.yaml":   "..data/envoy.yaml",
		"other/abs.yaml":  at("cm/envoy.yaml"),
		"other/up.yaml":   "../etc/plain.yaml",
		"other/dangling":  "nowhere/envoy.yaml",
		"other/loop.yaml": "loop.yaml",
	} {
		require.NoError(t, os.Symlink(target, at(link)))
	}
	for name, tc := range map[string]struct {
		path string
		want []link
	}{
		"a plain file": {"etc/plain.yaml", []link{{at("etc"), "plain.yaml"}}},
		"a ConfigMap key": {"cm/envoy.yaml", []link{
			{at("cm"), "envoy.yaml"}, {at("cm"), "..data"}, {at("cm/..2026_1"), "envoy.yaml"},
		}},
		"an absolute symlink to a ConfigMap key": {"other/abs.yaml", []link{
			{at("other"), "abs.yaml"}, {at("cm"), "envoy.yaml"}, {at("cm"), "..data"}, {at("cm/..2026_1"), "envoy.yaml"},
		}},
		"a relative symlink with ..": {"other/up.yaml", []link{{at("other"), "up.yaml"}, {at("etc"), "plain.yaml"}}},
		"a missing file":             {"etc/missing.yaml", []link{{at("etc"), "missing.yaml"}}},
		"a missing directory":        {"gone/envoy.yaml", []link{{root, "gone"}}},
		"a dangling symlink":         {"other/dangling", []link{{at("other"), "dangling"}, {at("other"), "nowhere"}}},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, chain(at(tc.path)))
		})
	}

	t.Run("a symlink loop stops after the kernel's limit", func(t *testing.T) {
		links := chain(at("other/loop.yaml"))
		require.Len(t, links, maxHops+1)
	})
}
