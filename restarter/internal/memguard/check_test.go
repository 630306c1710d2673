package memguard

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWorkingSet(t *testing.T) {
	require.Equal(t, uint64(300*MiB), Reading{Usage: 400 * MiB, InactiveFile: 100 * MiB}.WorkingSet())
	require.Equal(t, uint64(0), Reading{Usage: 100 * MiB, InactiveFile: 100 * MiB}.WorkingSet())
	// Counters are read one after the other and can cross; never below 0.
	require.Equal(t, uint64(0), Reading{Usage: 100 * MiB, InactiveFile: 101 * MiB}.WorkingSet())
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reading  Reading
		resident uint64
		wantOK   bool
	}{
		{"no limit: always fits", Reading{Usage: 64 * GiB, Version: 2}, 32 * GiB, true},
		{"roomy", Reading{Limit: 2 * GiB, Usage: 400 * MiB, Version: 2}, 180 * MiB, true},
		{"fits exactly", Reading{Limit: 512 * MiB, Usage: 332 * MiB, Version: 2}, 180 * MiB, true},
		{"one byte short", Reading{Limit: 512 * MiB, Usage: 332*MiB + 1, Version: 2}, 180 * MiB, false},
		{"tight", Reading{Limit: 512 * MiB, Usage: 400 * MiB, Version: 1}, 180 * MiB, false},
		{"page cache large, working set small: fits",
			Reading{Limit: 512 * MiB, Usage: 500 * MiB, InactiveFile: 400 * MiB, Version: 2}, 180 * MiB, true},
		{"already over the limit", Reading{Limit: 512 * MiB, Usage: 600 * MiB, Version: 2}, MiB, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := Check(tc.reading, tc.resident)
			require.Equal(t, tc.wantOK, ok)
			require.Equal(t, ok, reason == "", "a reason exactly when refused")
		})
	}
}

// The refusal is operator-visible (logs, restarter status, restarter
// reload): its text is pinned here and in docs/MEMORY-GUARD.md.
func TestRefusalText(t *testing.T) {
	_, reason := Check(Reading{Limit: 512 * MiB, Usage: 500 * MiB, InactiveFile: 100 * MiB, Version: 2}, 180*MiB)
	require.Equal(t, "not enough memory for a second Envoy: limit 512.0 MiB, used 400.0 MiB, Envoy resident 180.0 MiB", reason)
	_, reason = Check(Reading{Limit: 3 * GiB / 2, Usage: 1450*MiB + 512*1024, Version: 1}, 123456789)
	require.Equal(t, "not enough memory for a second Envoy: limit 1536.0 MiB, used 1450.5 MiB, Envoy resident 117.7 MiB", reason)
}

// Given a cgroup on disk, when the restarter asks before a hot restart,
// then page cache never refuses it and a real shortage does.
func TestReadThenCheck(t *testing.T) {
	const leaf = "/sys/fs/cgroup/system.slice/envoy.service"
	given := func(max string, current, inactive uint64) fixture {
		return merge(proc("0::/system.slice/envoy.service\n", mountRootFS+mountV2), v2(leaf, max, current, inactive))
	}
	for _, tc := range []struct {
		name       string
		given      fixture
		wantOK     bool
		wantReason string
	}{
		{"page cache fills the limit, working set small: allowed", given(bytes(512*MiB), 500*MiB, 400*MiB), true, ""},
		{"roomy: allowed", given(bytes(2*GiB), 400*MiB, 0), true, ""},
		{"no limit: allowed", given("max", 60*GiB, 0), true, ""},
		{"tight: refused", given(bytes(512*MiB), 420*MiB, 20*MiB), false,
			"not enough memory for a second Envoy: limit 512.0 MiB, used 400.0 MiB, Envoy resident 180.0 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Read(tc.given.root(t))
			require.NoError(t, err)
			ok, reason := Check(r, 180*MiB)
			require.Equal(t, tc.wantOK, ok)
			require.Equal(t, tc.wantReason, reason)
		})
	}
}
