package supervisor

import (
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
)

// instanceID identifies a restarter by what it runs: the same COMMAND,
// arguments, working directory and files give the same id, run after run.
func instanceID(cfg config.Config) string {
	h := fnv.New64a()
	path := cfg.Path
	if !filepath.IsAbs(path) {
		base := cfg.Dir
		if base == "" {
			base, _ = os.Getwd()
		}
		path = filepath.Join(base, path)
	}
	for _, s := range append([]string{path, cfg.Dir, cfg.BaseIDPath, cfg.ControlSocket, cfg.PIDFile}, cfg.Args...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return strconv.FormatUint(h.Sum64(), 16)
}
