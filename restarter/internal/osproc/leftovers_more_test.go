package osproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// testInstance is an instance id no other process carries.
func testInstance(t *testing.T) string {
	return fmt.Sprintf("%s-%d-%d", t.Name(), os.Getpid(), time.Now().UnixNano())
}

// unmarkedEnv is the test's environment without any instance mark.
func unmarkedEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, InstanceEnv+"=") })
}

// startLeftover starts what an earlier run leaves: a marked epoch 2 (a
// sleep), whose parent is a shell, not the restarter's executable. It
// returns the shell's pid and the epoch's; both are killed and reaped when
// the test ends.
func startLeftover(t *testing.T, id string) (parent, epoch int) {
	t.Helper()
	dir := t.TempDir()
	sh := exec.Command("/bin/sh", "-c", `RESTARTER_INSTANCE="$1" RESTART_EPOCH=2 sleep 60 & echo $! > epoch; wait`, "sh", id)
	sh.Dir, sh.Env = dir, unmarkedEnv()
	require.NoError(t, sh.Start())
	t.Cleanup(func() {
		if epoch != 0 {
			unix.Kill(epoch, syscall.SIGKILL)
		}
		sh.Process.Kill()
		sh.Wait()
		if epoch != 0 {
			awaitGone(t, epoch)
		}
	})
	epoch = readPID(t, filepath.Join(dir, "epoch"))
	return sh.Process.Pid, epoch
}

// markedSleep is a sleep carrying instance id.
func markedSleep(id string) *exec.Cmd {
	cmd := exec.Command("sleep", "60")
	cmd.Env = append(unmarkedEnv(), InstanceEnv+"="+id)
	return cmd
}

// waitMarked waits up to 10s for the pids to carry id (their exec done).
func waitMarked(t *testing.T, id string, pids ...int) []Leftover {
	t.Helper()
	var marked []Leftover
	require.Eventually(t, func() bool {
		marked = findMarked(id)
		for _, pid := range pids {
			if !slices.ContainsFunc(marked, func(l Leftover) bool { return l.pid == pid }) {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "%v not all marked %s", pids, id)
	return marked
}

func TestFindLeftoversOfAnEarlierRun(t *testing.T) {
	// Given an epoch of an earlier run (its restarter gone, a shell its
	// parent), and a marked process of a restarter running now (this one),
	id := testInstance(t)
	parent, epoch := startLeftover(t, id)
	current := startChild(t, markedSleep(id))
	marked := waitMarked(t, id, epoch, current)
	require.Len(t, marked, 2)
	require.Contains(t, marked, Leftover{pid: current, ppid: os.Getpid(), epoch: "?"}, "no RESTART_EPOCH: epoch unknown")

	// when the leftovers are looked for,
	left := FindLeftovers(id)

	// then only the earlier run's epoch is one: a sleep holds no Envoy state.
	require.Equal(t, []Leftover{{pid: epoch, ppid: parent, epoch: "2"}}, left)
	require.Equal(t, fmt.Sprintf("PID=%d (epoch 2, parent PID=%d)", epoch, parent), left[0].String())
	require.Empty(t, FindLeftovers(testInstance(t)+"-other"), "another instance's are none")
}

func TestGroupMembersCarryTheMarkInThisGroup(t *testing.T) {
	// Given a marked child in this process's group, a marked one in a group
	// of its own, and an unmarked one in this group,
	id := testInstance(t)
	member := startChild(t, markedSleep(id))
	own := markedSleep(id)
	own.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	away := startChild(t, own)
	unmarked := exec.Command("sleep", "60")
	unmarked.Env = unmarkedEnv()
	other := startChild(t, unmarked)
	waitMarked(t, id, member, away)

	// only the first is a member.
	members := GroupMembers(id)
	require.Equal(t, []int{member}, members)
	require.NotContains(t, members, other)
}

func TestGroupMembersLooksAgainAtAnEmptyEnvironment(t *testing.T) {
	// Given a process of this group whose environment reads empty (as one
	// in the middle of an exec does, for a moment), beside a marked one,
	id := testInstance(t)
	member := startChild(t, markedSleep(id))
	bare := exec.Command("sleep", "60")
	bare.Env = []string{}
	empty := startChild(t, bare)
	waitMarked(t, id, member)

	// one scan cannot tell it yet,
	g := groupScan{marker: []byte(InstanceEnv + "=" + id), self: os.Getpid(), pgrp: unix.Getpgrp()}
	require.Contains(t, g.scan([]int{member, empty}), empty)
	require.Equal(t, []int{member}, g.members)

	// and GroupMembers, after looking again, leaves it out: no mark.
	require.Equal(t, []int{member}, GroupMembers(id))
}
