package osproc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/envoy-restarter/restarter/internal/procfs"

	"golang.org/x/sys/unix"
)

// InstanceEnv names the environment variable that marks every process a
// restarter starts (epochs and helpers) with its instance id, so that a
// later run of the same restarter can find what an earlier one left behind.
const InstanceEnv = "RESTARTER_INSTANCE"

// Leftover is a process started by an earlier run of the same restarter.
type Leftover struct {
	pid, ppid int
	epoch     string
	// envoy: it maps Envoy's shared memory region (it is an Envoy epoch,
	// holding the base id's domain sockets and the listeners), or its maps
	// could not be told (unreadable, or empty in the middle of an exec). A
	// helper a start script left in the background holds none of that.
	envoy bool
}

func (l Leftover) String() string {
	return fmt.Sprintf("PID=%d (epoch %s, parent PID=%d)", l.pid, l.epoch, l.ppid)
}

// FindLeftovers lists the processes whose environment carries instance id
// and whose restarter is gone: epochs, or processes they started, of an
// earlier run. Those of a restarter running now (the first unmarked process
// up their parent chain runs the restarter's executable) are left to the pid
// file and control socket checks. Processes of other users cannot be read,
// and are not found, unless the restarter runs as root.
func FindLeftovers(id string) []Leftover {
	marked := findMarked(id)
	parent := map[int]int{}
	for _, l := range marked {
		parent[l.pid] = l.ppid
	}
	var out []Leftover
	for _, l := range marked {
		// Up to the first unmarked ancestor; len(marked) steps bound a cycle
		// (pids reused while the scan ran).
		p := l.ppid
		for i := 0; i < len(marked); i++ {
			pp, ok := parent[p]
			if !ok {
				break
			}
			p = pp
		}
		if runsRestarterExe(p) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// findMarked lists the live processes, other than this one, whose
// environment carries instance id.
func findMarked(id string) []Leftover {
	pids, err := ownPIDs()
	if err != nil {
		return nil
	}
	marker := []byte(InstanceEnv + "=" + id)
	self := os.Getpid()
	var out []Leftover
	// One buffer for every process's environment: the scan runs at start-up,
	// and what it allocates would stay in the restarter's resident memory.
	var environ bytes.Buffer
	environ.Grow(4 << 10)
	for _, pid := range pids {
		environ.Reset()
		if pid == self || procfs.ReadEnviron(&environ, pid) != nil || !procfs.HasEnv(environ.Bytes(), marker) {
			continue
		}
		l := Leftover{pid: pid, epoch: "?"}
		if epoch, ok := procfs.Env(environ.Bytes(), "RESTART_EPOCH"); ok {
			l.epoch = epoch
		}
		if st, err := procfs.ReadStat(pid); err == nil && st.State != 'Z' {
			l.ppid = st.PPID
			l.envoy = holdsEnvoyState(pid)
			out = append(out, l)
		}
	}
	return out
}

// holdsEnvoyState reports whether pid maps Envoy's shared memory region, or
// might: its maps are unreadable or empty (an exec in progress).
func holdsEnvoyState(pid int) bool {
	b, err := procfs.ReadMaps(pid)
	if err != nil || len(b) == 0 {
		return true
	}
	_, found := regionIn(b)
	return found
}

// leftoverWait is how long the restarter waits at start-up for processes
// of an earlier run to exit (an epoch told to stop by its parent's death
// may be on its way out).
const leftoverWait = 5 * time.Second

// CheckLeftovers fails start-up while Envoy processes of an earlier run of
// this restarter are still running: an epoch that outlived its restarter
// (Envoy replaces the restarter's SIGKILL parent-death signal with its own
// SIGTERM, and may survive it) holds the base id, and every new epoch 0
// would fail to bind its domain socket (errno=98). It waits leftoverWait for
// them to exit first. A Leftover that holds no Envoy state (a helper a
// start script left in the background) is only warned about: it never
// blocks a start.
func CheckLeftovers(find func(id string) []Leftover, id string, warn func(string)) error {
	envoy, helpers := splitLeftovers(find(id))
	if len(helpers) > 0 {
		warn(fmt.Sprintf("processes started by an earlier run of this restarter are still running, holding no Envoy state (no Envoy shared memory mapped): %s; leaving them alone", joinLeftovers(helpers)))
	}
	if len(envoy) == 0 {
		return nil
	}
	warn(fmt.Sprintf("Envoy processes started by an earlier run of this restarter are still running: %s; waiting up to %s for them to exit", joinLeftovers(envoy), leftoverWait))
	deadline := time.Now().Add(leftoverWait)
	for len(envoy) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		envoy, _ = splitLeftovers(find(id))
	}
	if len(envoy) == 0 {
		return nil
	}
	pids := make([]string, len(envoy))
	for i, l := range envoy {
		pids[i] = strconv.Itoa(l.pid)
	}
	return fmt.Errorf("processes started by an earlier run of this restarter are still running: %s; they hold its base id and ports, so a new epoch 0 would fail: stop them (kill %s) and start the restarter again", joinLeftovers(envoy), strings.Join(pids, " "))
}

// splitLeftovers parts leftovers into those holding Envoy state and the
// others.
func splitLeftovers(left []Leftover) (envoy, helpers []Leftover) {
	for _, l := range left {
		if l.envoy {
			envoy = append(envoy, l)
		} else {
			helpers = append(helpers, l)
		}
	}
	return envoy, helpers
}

func joinLeftovers(left []Leftover) string {
	s := make([]string, len(left))
	for i, l := range left {
		s[i] = l.String()
	}
	return strings.Join(s, ", ")
}

// ownPIDs lists the processes in /proc, unless /proc is another pid
// namespace's (procfs.ErrForeign): its numbers would name other processes.
func ownPIDs() ([]int, error) {
	if err := procfs.CheckOwn(); err != nil {
		return nil, err
	}
	return procfs.PIDs()
}

// GroupMembers lists the live processes of this process's group, itself
// aside, that carry instance id: the epochs, and what their start scripts
// left running. The mark tells them from the rest of a group the restarter
// does not lead. A process caught in the middle of an exec shows no
// environment for a moment (an empty one, or ESRCH): it is looked at
// again, a few times, rather than taken for unmarked.
func GroupMembers(id string) []int {
	pids, err := ownPIDs()
	if err != nil {
		return nil
	}
	g := groupScan{marker: []byte(InstanceEnv + "=" + id), self: os.Getpid(), pgrp: unix.Getpgrp()}
	unsure := g.scan(pids)
	for try := 0; len(unsure) > 0 && try < execRetries; try++ {
		time.Sleep(execRetryWait)
		unsure = g.scan(unsure)
	}
	return g.members
}

const (
	execRetries   = 5
	execRetryWait = 5 * time.Millisecond
)

// groupScan is one GroupMembers listing.
type groupScan struct {
	marker     []byte
	self, pgrp int
	environ    bytes.Buffer
	members    []int
}

// scan adds the marked members of the group among pids and returns those
// whose environment could not be told yet.
func (g *groupScan) scan(pids []int) (unsure []int) {
	for _, pid := range pids {
		if st, err := procfs.ReadStat(pid); pid == g.self || err != nil || st.PGRP != g.pgrp || !st.Running() {
			continue
		}
		g.environ.Reset()
		err := procfs.ReadEnviron(&g.environ, pid)
		switch {
		case err == nil && procfs.HasEnv(g.environ.Bytes(), g.marker):
			g.members = append(g.members, pid)
		case (err == nil && g.environ.Len() == 0) || (err != nil && !errors.Is(err, fs.ErrNotExist)):
			// (ESRCH too: a process between its exec's change of image
			// and its new environment has, for a moment, none to read.)
			unsure = append(unsure, pid)
		}
	}
	return unsure
}
