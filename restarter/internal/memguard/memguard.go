// Package memguard tells whether a second Envoy fits in the restarter's
// cgroup memory limit. A hot restart runs two Envoys for a while; under a
// limit, the second one can get the whole pod or unit OOM-killed mid-restart
// (istio/istio#27087). The restarter reads its cgroup before a hot restart
// and refuses the restart when the room left is less than the newest
// epoch's resident memory. docs/MEMORY-GUARD.md is the operator's side.
//
// Read finds the restarter's cgroups from /proc/self/cgroup and their mount
// points from /proc/self/mountinfo (cgroup v2, v1's memory controller, or
// both on a hybrid host), then reads the limit of the cgroup and of each
// ancestor up to the mount's root. Check compares.
package memguard

import "fmt"

// Reading is what Read found: the limit and usage of the cgroup, among the
// restarter's own and its ancestors, that leaves the least room.
type Reading struct {
	Limit        uint64 // bytes; 0 means no limit
	Usage        uint64 // bytes charged: memory.current (v2), memory.usage_in_bytes (v1)
	InactiveFile uint64 // reclaimable page cache: inactive_file (v2), total_inactive_file (v1)
	Path         string // the cgroup's directory as seen from root, e.g. /sys/fs/cgroup/system.slice/envoy.service
	Version      int    // 2 or 1; 0 when no memory controller is visible
}

// WorkingSet is Usage minus the inactive page cache, floored at 0: memory
// the kernel cannot reclaim without swapping or killing, counted the way
// the kubelet counts it for evictions.
func (r Reading) WorkingSet() uint64 {
	if r.InactiveFile >= r.Usage {
		return 0
	}
	return r.Usage - r.InactiveFile
}

// room is what is left under the limit: Limit minus WorkingSet, floored at
// 0. Meaningless without a limit.
func (r Reading) room() uint64 {
	if ws := r.WorkingSet(); ws < r.Limit {
		return r.Limit - ws
	}
	return 0
}

// Check says whether a second Envoy of resident bytes fits in r's room.
// Without a limit it always fits. When it does not fit, reason is the
// refusal for the operator, e.g. "not enough memory for a second Envoy:
// limit 512.0 MiB, used 400.0 MiB, Envoy resident 180.0 MiB", where "used"
// is the working set.
func Check(r Reading, resident uint64) (ok bool, reason string) {
	if r.Limit == 0 || resident <= r.room() {
		return true, ""
	}
	return false, fmt.Sprintf("not enough memory for a second Envoy: limit %s, used %s, Envoy resident %s",
		mib(r.Limit), mib(r.WorkingSet()), mib(resident))
}

func mib(bytes uint64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }

// Read reads the restarter's cgroup memory limit and usage through root
// ("/" in production; tests pass a fixture tree holding proc/self/cgroup,
// proc/self/mountinfo and the cgroup files under their mount points).
//
// The cgroup that decides is the one with the least room among the
// restarter's own cgroup and its ancestors up to the mount's root, on each
// hierarchy that may hold the memory controller (a hybrid host lists a v1
// memory hierarchy and v2; both are read). With no limit anywhere, Limit is
// 0 and Path and Version name the nearest cgroup that has memory files,
// normally the restarter's own. No memory controller visible (no /proc/self/cgroup, no memory
// line in it, its hierarchy not mounted here, or a cgroup namespace hiding
// it) is not an error: the Reading is zero and the guard inert. An error
// means files that exist could not be read or parsed (a limit without its
// usage file, a number that is not one); it names the file.
func Read(root string) (Reading, error) {
	hierarchies, err := findHierarchies(root)
	if err != nil {
		return Reading{}, err
	}
	var best Reading
	for _, h := range hierarchies {
		r, err := readHierarchy(root, h)
		if err != nil {
			return Reading{}, err
		}
		best = tighter(best, r)
	}
	return best, nil
}

// readHierarchy walks from the restarter's cgroup up to the mount's root:
// an ancestor's limit covers its descendants, and its usage counts theirs
// and their siblings', so the level with the least room is the one that
// decides whether the OOM killer comes.
func readHierarchy(root string, h hierarchy) (Reading, error) {
	var best Reading
	for _, dir := range h.levels() {
		r, err := readLevel(root, dir, h.version)
		if err != nil {
			return Reading{}, err
		}
		best = tighter(best, r)
	}
	return best, nil
}

// tighter returns whichever of a and b leaves less room: a limited Reading
// beats an unlimited one, any Reading beats the zero one, and a tie keeps a
// (the cgroup nearer the restarter, or the hierarchy listed first).
func tighter(a, b Reading) Reading {
	switch {
	case b.Version == 0:
		return a
	case a.Version == 0:
		return b
	case b.Limit == 0:
		return a
	case a.Limit == 0:
		return b
	case b.room() < a.room():
		return b
	default:
		return a
	}
}
