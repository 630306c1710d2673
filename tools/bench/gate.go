package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
)

// GateResult is the init gate's wake-up: how long after Envoy's
// INITIALIZING flag clears the restarter forks the epoch a SIGHUP queued
// while the flag was set.
type GateResult struct {
	Runs int `json:"runs"`
	// ClearToFork is from the flag clearing (as the bench saw it, polling the
	// mapped word every gatePoll) to the restarter's "forking and execing"
	// log line, which it writes just before fork.
	ClearToFork Summary `json:"flag_clear_to_fork_ms"`
	// ClearToExec is to the new fakeenvoy's first instruction in main, after
	// the fork, the start script's /bin/sh and its exec.
	ClearToExec Summary `json:"flag_clear_to_exec_ms"`
	// ResolutionMs is the bench's own uncertainty on the clearing moment.
	ResolutionMs float64 `json:"clear_resolution_ms"`
	Error        string  `json:"error,omitempty"`
}

// gatePoll is how often the bench reads the flag; the clearing moment is
// taken halfway between the last read that saw it set and the first that
// saw it clear.
const gatePoll = 50 * time.Microsecond

// gateReadyDelay keeps each epoch INITIALIZING long enough for the second
// SIGHUP of a pair to find it so.
const gateReadyDelay = "30ms"

// runGate hot restarts r in pairs of SIGHUPs: the first starts epoch n, the
// second comes while n holds INITIALIZING and is queued; the delay from the
// flag clearing to epoch n+1's fork is the gate's wake-up latency.
func (b *bench) runGate(r Restarter) (res GateResult) {
	r.Argv = append(append([]string(nil), r.Argv...), "--log-format", "json")
	in, err := b.launch(r)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer in.close()
	if err := os.WriteFile(in.sandbox.Path("ready-delay"), []byte(gateReadyDelay+"\n"), 0o644); err != nil {
		res.Error = err.Error()
		return res
	}
	flags, unmap, err := mapFlags(in.sandbox.Dir)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer unmap()
	initializing := func() bool { return flags.Load()&envoyshm.FlagInitializing != 0 }

	var toFork, toExec []float64
	worst := time.Duration(0)
	for run := 0; run < b.gateRuns; run++ {
		first := 2*run + 1
		// The epochs before are done (fakeenvoy writes its LIVE state a few
		// ms before it clears the flag): the flag set next is epoch first's.
		if _, _, _, err := waitFlag(initializing, false, in.exited); err != nil {
			res.Error = fmt.Sprintf("before epoch %d: %v", first, err)
			break
		}
		if err := in.signal(syscall.SIGHUP); err != nil {
			res.Error = err.Error()
			break
		}
		if _, err := in.execNanos(first); err != nil {
			res.Error = fmt.Sprintf("epoch %d: %v", first, err)
			break
		}
		if _, _, _, err := waitFlag(initializing, true, in.exited); err != nil {
			res.Error = fmt.Sprintf("epoch %d: %v", first, err)
			break
		}
		if err := in.signal(syscall.SIGHUP); err != nil { // queued: epoch first initializes
			res.Error = err.Error()
			break
		}
		wall, mono, gap, err := waitFlag(initializing, false, in.exited)
		if err != nil {
			res.Error = fmt.Sprintf("epoch %d: %v", first, err)
			break
		}
		if _, err := in.waitLive(first + 1); err != nil {
			res.Error = fmt.Sprintf("epoch %d: %v", first+1, err)
			break
		}
		forked, err := forkTime(in.sandbox.Path("restarter.log"), first+1)
		if err != nil {
			res.Error = err.Error()
			break
		}
		execNs, err := in.execNanos(first + 1)
		if err != nil {
			res.Error = err.Error()
			break
		}
		toFork = append(toFork, ms(forked.Sub(wall)))
		toExec = append(toExec, float64(execNs-mono)/1e6)
		worst = max(worst, gap)
		time.Sleep(b.settle) // the parents drain and exit
	}
	res.Runs = len(toFork)
	res.ClearToFork, res.ClearToExec = Summarize(toFork), Summarize(toExec)
	res.ResolutionMs = ms(worst / 2)
	return res
}

// mapFlags maps the sandbox's Envoy region read-only and returns its
// flags_ word.
func mapFlags(dir string) (*atomic.Uint64, func(), error) {
	b, err := os.ReadFile(filepath.Join(dir, "base-id"))
	if err != nil {
		return nil, nil, err
	}
	id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("base id %q: %w", b, err)
	}
	f, err := os.Open(envoyshm.Path(uint32(id)))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, envoyshm.Size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	word := (*atomic.Uint64)(unsafe.Pointer(&mem[envoyshm.OffsetFlags]))
	return word, func() { _ = unix.Munmap(mem) }, nil
}

// waitFlag polls until initializing() == want and returns the moment it
// changed (wall clock and CLOCK_MONOTONIC), halfway between the last two
// reads, and the time between those reads.
func waitFlag(initializing func() bool, want bool, exited <-chan struct{}) (time.Time, int64, time.Duration, error) {
	deadline := time.Now().Add(10 * time.Second)
	lastWall, lastMono := time.Now(), monotonicNow()
	for {
		if initializing() == want {
			wall, mono := time.Now(), monotonicNow()
			return lastWall.Add(wall.Sub(lastWall) / 2), (lastMono + mono) / 2, wall.Sub(lastWall), nil
		}
		lastWall, lastMono = time.Now(), monotonicNow()
		select {
		case <-exited:
			return time.Time{}, 0, 0, errors.New("the restarter exited")
		default:
		}
		if lastWall.After(deadline) {
			return time.Time{}, 0, 0, fmt.Errorf("INITIALIZING not %v within 10s", want)
		}
		time.Sleep(gatePoll)
	}
}

// forkTime returns the time of the restarter's JSON log line "forking and
// execing new child process at epoch N".
func forkTime(logPath string, epoch int) (time.Time, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	want := "forking and execing new child process at epoch " + strconv.Itoa(epoch)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		var line struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == want {
			return line.Time, nil
		}
	}
	return time.Time{}, fmt.Errorf("no %q in %s", want, logPath)
}
