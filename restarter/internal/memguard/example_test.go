package memguard_test

import (
	"fmt"

	"github.com/envoy-restarter/restarter/restarter/internal/memguard"
)

// Before a hot restart: 512 MiB limit, 500 MiB charged of which 100 MiB is
// inactive page cache, and the newest epoch resident at 180 MiB.
func ExampleCheck() {
	r := memguard.Reading{Limit: 512 << 20, Usage: 500 << 20, InactiveFile: 100 << 20, Version: 2}
	ok, reason := memguard.Check(r, 180<<20)
	fmt.Println(ok, reason)
	// Output: false not enough memory for a second Envoy: limit 512.0 MiB, used 400.0 MiB, Envoy resident 180.0 MiB
}
