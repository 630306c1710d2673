// Package procfs is the one reader of Linux's /proc in the repository: the
// restarter, its tests and the bench all ask it. It parses what they need
// and nothing more; every function reads fresh, and a process that is gone
// is an error (fs.ErrNotExist), never a stale answer.
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClockTick is the kernel's USER_HZ, the unit of utime and stime in
// /proc/PID/stat: 100 on every Linux architecture Go supports.
const ClockTick = 10 * time.Millisecond

// Stat is the part of /proc/PID/stat this repository reads.
type Stat struct {
	PID   int
	State byte // R, S, D, Z, X, ...
	PPID  int
	PGRP  int
	CPU   time.Duration // utime + stime, every thread, live or exited
}

// Running reports whether the process has not terminated: a zombie (Z) or
// a dead task (X) has.
func (s Stat) Running() bool { return s.State != 'Z' && s.State != 'X' }

// ReadStat parses /proc/PID/stat. The command name may hold spaces and
// parentheses, so fields are counted from the last ')'.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(path(pid, "stat"))
	if err != nil {
		return Stat{}, err
	}
	return parseStat(pid, b)
}

func parseStat(pid int, b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return Stat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	st := Stat{PID: pid, State: f[0][0]}
	var errs [4]error
	var utime, stime int64
	st.PPID, errs[0] = strconv.Atoi(f[1])
	st.PGRP, errs[1] = strconv.Atoi(f[2])
	utime, errs[2] = strconv.ParseInt(f[11], 10, 64)
	stime, errs[3] = strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(errs[:]...); err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	st.CPU = time.Duration(utime+stime) * ClockTick
	return st, nil
}

// Running reports whether pid names a process that has not terminated.
func Running(pid int) bool {
	st, err := ReadStat(pid)
	return err == nil && st.Running()
}

// PIDs lists the processes in /proc, unsorted.
func PIDs() ([]int, error) {
	f, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, name := range names {
		if pid, err := strconv.Atoi(name); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// All reads the stat of every process; those that vanish meanwhile are
// skipped.
func All() []Stat {
	pids, _ := PIDs()
	out := make([]Stat, 0, len(pids))
	for _, pid := range pids {
		if st, err := ReadStat(pid); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// Children lists pid's children, every thread's (/proc/PID/task/*/children:
// no scan of /proc).
func Children(pid int) []int {
	tasks, err := os.ReadDir(path(pid, "task"))
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(path(pid, "task/"+t.Name()+"/children"))
		if err != nil {
			continue
		}
		for f := range strings.FieldsSeq(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// ReadEnviron appends pid's environment (NUL-separated, as the kernel
// keeps it) to buf.
func ReadEnviron(buf *bytes.Buffer, pid int) error {
	f, err := os.Open(path(pid, "environ"))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = buf.ReadFrom(f)
	return err
}

// HasEnv reports whether environ (NUL-separated) holds the entry kv.
func HasEnv(environ, kv []byte) bool {
	for e := range bytes.SplitSeq(environ, []byte{0}) {
		if bytes.Equal(e, kv) {
			return true
		}
	}
	return false
}

// Env returns the value of name in environ (NUL-separated), if set.
func Env(environ []byte, name string) (string, bool) {
	prefix := []byte(name + "=")
	for e := range bytes.SplitSeq(environ, []byte{0}) {
		if v, ok := bytes.CutPrefix(e, prefix); ok {
			return string(v), true
		}
	}
	return "", false
}

// ReadMaps returns /proc/PID/maps. An empty one is a zombie's, or that of a
// process in the middle of an exec.
func ReadMaps(pid int) ([]byte, error) { return os.ReadFile(path(pid, "maps")) }

// Exe returns the target of /proc/PID/exe: the executable pid runs.
func Exe(pid int) (string, error) { return os.Readlink(path(pid, "exe")) }

// Memory returns pid's VmRSS and VmHWM (peak RSS) in KiB.
func Memory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(path(pid, "status"))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
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

// ErrForeign says /proc belongs to another pid namespace.
var ErrForeign = errors.New("/proc belongs to another pid namespace (mount one for this namespace, e.g. unshare --mount-proc)")

// CheckOwn returns ErrForeign unless /proc is this process's pid
// namespace's. A /proc mounted for another one (`unshare --pid` without
// --mount-proc) lists processes by numbers that mean other processes here:
// acting on them could signal a stranger.
func CheckOwn() error {
	if self, err := os.Readlink("/proc/self"); err != nil || self != strconv.Itoa(os.Getpid()) {
		return ErrForeign
	}
	return nil
}

// Gone reports whether err, from reading a process's file, says the
// process is gone.
func Gone(err error) bool { return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) }

func path(pid int, file string) string { return "/proc/" + strconv.Itoa(pid) + "/" + file }

// CPU returns the CPU time pid has used: the sum of its threads'
// time on a CPU from /proc/PID/task/TID/schedstat, in nanoseconds. The
// utime and stime of /proc/PID/stat are sampled at every 10 ms tick, too
// coarse for the few milliseconds a hot restart costs; a thread that
// exited is no longer counted (Go's threads do not exit, Python's
// restarter has one). Falls back to /proc/PID/stat.
func CPU(pid int) (time.Duration, error) {
	dir := path(pid, "task")
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
		st, err := ReadStat(pid)
		return st.CPU, err
	}
	return total, nil
}
