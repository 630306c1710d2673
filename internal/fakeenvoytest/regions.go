package fakeenvoytest

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
)

// RegionLogEnv is the environment variable naming the file fakeenvoy
// appends its base id to, a line per epoch (fakeenvoy/README.md).
const RegionLogEnv = "FAKEENVOY_SHM_LOG"

// LogRegions has every fakeenvoy this process starts from now on (through
// the restarter and start scripts, which keep the environment) log its
// shared memory region, and returns the function that removes every logged
// region and the log. Envoy never removes its region, and one made under a
// dynamic base id is otherwise known only from a --base-id-path file that a
// later run overwrites.
func LogRegions() (removeAll func(), err error) {
	f, err := os.CreateTemp("", "fakeenvoy-regions-*.log")
	if err != nil {
		return nil, fmt.Errorf("shared memory region log: %w", err)
	}
	f.Close()
	log := f.Name()
	if err := os.Setenv(RegionLogEnv, log); err != nil {
		os.Remove(log)
		return nil, fmt.Errorf("shared memory region log: %w", err)
	}
	return func() {
		b, _ := os.ReadFile(log)
		for _, line := range strings.Fields(string(b)) {
			if id, err := strconv.ParseUint(line, 10, 32); err == nil {
				_ = os.Remove(envoyshm.Path(uint32(id)))
			}
		}
		_ = os.Remove(log)
	}, nil
}
