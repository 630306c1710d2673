package supervisor

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// notify sends n to the service manager (sd_notify): the machine emits
// Notify actions only when $NOTIFY_SOCKET is set.
func (r *runner) notify(n machine.Notify) {
	var lines []string
	if n.Ready {
		lines = append(lines, "READY=1")
	}
	if n.Reloading {
		lines = append(lines, "RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(r.sys.monotonicUsec(), 10))
	}
	if n.Stopping {
		lines = append(lines, "STOPPING=1")
	}
	lines = append(lines, "STATUS="+n.Status, "MAINPID="+strconv.Itoa(r.sys.getpid()))
	if err := r.sys.sdNotify(strings.Join(lines, "\n")); err != nil {
		r.log.Warn(fmt.Sprintf("sd_notify: %v", err))
	}
}
