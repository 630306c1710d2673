package main

import (
	"github.com/envoy-restarter/restarter/internal/procfs"
	"golang.org/x/sys/unix"
)

// The bench reads /proc through internal/procfs, as the restarter does.

// tree is a snapshot of the descendants of one process.
type tree struct {
	Descendants int // not counting the root
	Zombies     int // descendants in state Z (exited, not reaped)
}

// snapshotTree counts root's descendants and zombies among them.
func snapshotTree(root int) tree {
	children := map[int][]procfs.Stat{}
	for _, p := range procfs.All() {
		children[p.PPID] = append(children[p.PPID], p)
	}
	var t tree
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			t.Descendants++
			if c.State == 'Z' {
				t.Zombies++
			}
			queue = append(queue, c.PID)
		}
	}
	return t
}

// inGroup returns the live processes (zombies included) of process group pgid.
func inGroup(pgid int) []procfs.Stat {
	var out []procfs.Stat
	for _, p := range procfs.All() {
		if p.PGRP == pgid {
			out = append(out, p)
		}
	}
	return out
}

// monotonicNow reads CLOCK_MONOTONIC in nanoseconds, the clock fakeenvoy's
// --fake-exec-timestamp-path records.
func monotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
