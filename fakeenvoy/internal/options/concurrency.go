package options

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// hardwareConcurrency is --concurrency's default, Envoy's
// std::thread::hardware_concurrency(): the CPUs online, as glibc counts
// them from /sys/devices/system/cpu/online (this process's CPU affinity
// when that cannot be read).
func hardwareConcurrency() uint32 {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return uint32(max(runtime.NumCPU(), 1))
	}
	if n := countCPUList(strings.TrimSpace(string(b))); n > 0 {
		return n
	}
	return uint32(max(runtime.NumCPU(), 1))
}

// countCPUList counts the CPUs of a kernel CPU list such as "0-3,6,8-9";
// 0 if it does not parse.
func countCPUList(list string) uint32 {
	var n uint32
	for _, part := range strings.Split(list, ",") {
		first, last, isRange := strings.Cut(part, "-")
		lo, err := strconv.ParseUint(first, 10, 32)
		if err != nil {
			return 0
		}
		hi := lo
		if isRange {
			if hi, err = strconv.ParseUint(last, 10, 32); err != nil || hi < lo {
				return 0
			}
		}
		n += uint32(hi - lo + 1)
	}
	return n
}
