package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clockTick is the kernel's USER_HZ, the unit of utime and stime in
// /proc/PID/stat; it is 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procStat is the part of /proc/PID/stat the bench reads.
type procStat struct {
	PID   int
	State byte
	PPID  int
	PGRP  int
	CPU   time.Duration // utime + stime, every thread, live or exited
}

// readStat parses /proc/PID/stat. The command name may hold spaces and
// parentheses, so fields are counted from the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+2:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	st := procStat{PID: pid, State: f[0][0]}
	st.PPID, _ = strconv.Atoi(f[1])
	st.PGRP, _ = strconv.Atoi(f[2])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	st.CPU = time.Duration(utime+stime) * clockTick
	return st, nil
}

// readCPU returns the CPU time pid has used: the sum of its threads'
// time on a CPU from /proc/PID/task/TID/schedstat, in nanoseconds. The
// utime and stime of /proc/PID/stat are sampled at every 10 ms tick, too
// coarse for the few milliseconds a hot restart costs; a thread that
// exited is no longer counted (Go's threads do not exit, Python's
// restarter has one). Falls back to /proc/PID/stat.
func readCPU(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			tasks = nil
			break
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			tasks = nil
			break
		}
		total += time.Duration(ns)
	}
	if err != nil || len(tasks) == 0 {
		st, err := readStat(pid)
		return st.CPU, err
	}
	return total, nil
}

// readMemKiB returns the VmRSS and VmHWM (peak RSS) of pid in KiB.
func readMemKiB(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, nil
}

// allProcs reads the stat of every process on the host; processes that
// vanish while it reads are skipped.
func allProcs() []procStat {
	d, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	procs := make([]procStat, 0, len(d))
	for _, e := range d {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			procs = append(procs, st)
		}
	}
	return procs
}

// tree is a snapshot of the descendants of one process.
type tree struct {
	Descendants int // not counting the root
	Zombies     int // descendants in state Z (exited, not reaped)
}

// snapshotTree counts root's descendants and zombies among them.
func snapshotTree(root int) tree {
	children := map[int][]procStat{}
	for _, p := range allProcs() {
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
func inGroup(pgid int) []procStat {
	var out []procStat
	for _, p := range allProcs() {
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
