// Package proctest runs real processes in tests: it builds the project's
// binaries, starts processes in their own process group, records their output
// line by line, waits for lines, files and exits with deadlines (never a
// fixed sleep), and kills and reaps the whole group when the test ends, even
// when it fails.
package proctest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bazelbuild/rules_go/go/runfiles"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/procfs"
)

// Timeout bounds every wait in a scenario unless the test gives its own.
const Timeout = 20 * time.Second

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
	buildDir   string
)

// Binary returns the path of one of the project's commands, "restarter" or
// "fakeenvoy". Under Bazel the path comes from the environment variable
// RESTARTER_BIN / FAKEENVOY_BIN (a runfiles path, or an absolute path);
// otherwise the command is built once per test binary with `go build`.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if path, ok := fromEnv(t, strings.ToUpper(name)+"_BIN"); ok {
		return path
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[name]; ok {
		return p
	}
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "proctest-bin-")
		if err != nil {
			t.Fatalf("temp dir for binaries: %v", err)
		}
		// Readable by all, so a test may run a binary as another user.
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatalf("temp dir for binaries: %v", err)
		}
		buildDir = dir
	}
	out := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-o", out, "github.com/envoy-restarter/restarter/"+name)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	buildCache[name] = out
	return out
}

// Main is the TestMain of a package whose tests use Binary: it runs the
// tests, removes the binaries Binary built and every shared memory region
// the tests' fakeenvoy processes made (fakeenvoytest.LogRegions), and exits
// with the tests' code.
//
//	func TestMain(m *testing.M) { proctest.Main(m) }
func Main(m *testing.M) {
	removeRegions, err := fakeenvoytest.LogRegions()
	if err != nil {
		fmt.Fprintln(os.Stderr, "proctest:", err)
		os.Exit(1)
	}
	code := m.Run()
	removeRegions()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// fromEnv resolves the runfiles path in the environment variable env, if
// set (as $(rlocationpath ...) gives it, repository mapping included); an
// absolute path is taken as it is (a test handing the binaries it built to
// a test binary it re-runs); a path that cannot be resolved fails the test.
func fromEnv(t testing.TB, env string) (string, bool) {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		return "", false
	}
	path, err := p, error(nil)
	if !filepath.IsAbs(p) {
		path, err = runfiles.Rlocation(p)
	}
	if err == nil {
		_, err = os.Stat(path)
	}
	if err != nil {
		t.Fatalf("%s=%s: not found in the runfiles: %v", env, p, err)
	}
	return path, true
}

// Proc is a running process whose stdout and stderr are recorded.
type Proc struct {
	t    testing.TB
	Cmd  *exec.Cmd
	name string

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced whenever a line arrives or the process exits
	done    bool          // the process exited
	eof     bool          // every writer of its output (children too) closed it
	status  syscall.WaitStatus
}

// Options tune Start.
type Options struct {
	Dir string   // working directory; the test's temp dir when empty
	Env []string // added to the test's environment
	// Stdout, when set, receives the process's stdout and stderr instead of
	// the recorder (a pipe or FIFO the test controls); Lines and WaitLine
	// then see nothing.
	Stdout *os.File
}

// Start starts path with args in its own process group, with Pdeathsig so it
// dies with the test. When the test ends, the whole group is KILLed and the
// process reaped; if the test failed, its output is printed.
func Start(t testing.TB, opts Options, path string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Dir = opts.Dir
	if cmd.Dir == "" {
		cmd.Dir = t.TempDir()
	}
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Proc{t: t, Cmd: cmd, name: filepath.Base(path), changed: make(chan struct{})}
	if opts.Stdout != nil {
		cmd.Stdout, cmd.Stderr = opts.Stdout, opts.Stdout
		p.eof = true // nothing to record
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", path, err)
		}
	} else {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = pw, pw
		if err := cmd.Start(); err != nil {
			pr.Close()
			pw.Close()
			t.Fatalf("start %s: %v", path, err)
		}
		pw.Close()
		go p.read(pr)
	}
	go func() {
		cmd.Wait()
		p.mu.Lock()
		p.done = true
		if cmd.ProcessState != nil {
			p.status = cmd.ProcessState.Sys().(syscall.WaitStatus)
		}
		p.notifyLocked()
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		pgid := cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGKILL)
		p.waitDone(10 * time.Second)
		if t.Failed() {
			t.Logf("output of %s (pid %d):\n%s", p.name, pgid, p.Output())
		}
	})
	return p
}

func (p *Proc) read(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		p.notifyLocked()
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.eof = true
	p.notifyLocked()
	p.mu.Unlock()
}

func (p *Proc) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// PID returns the process id (and process group id) of the process.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.PID(), sig); err != nil {
		p.t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// Alive reports whether the process is still running: it has not exited,
// and is not a zombie waiting to be reaped (as for the package's Alive).
func (p *Proc) Alive() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	// done lags the exit until the reap; the zombie already counts as exited.
	return !done && Alive(p.PID())
}

// Output returns everything the process printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// Lines returns the lines printed so far that match re.
func (p *Proc) Lines(re string) []string {
	rx := regexp.MustCompile(re)
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.lines {
		if rx.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// WaitLine waits until the process has printed n lines matching re (ever, not
// only new ones) and returns the submatches of the n-th. It fails the test
// on timeout or when the process exits first.
func (p *Proc) WaitLine(re string, n int, timeout time.Duration) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		seen := 0
		for _, l := range p.lines {
			if m := rx.FindStringSubmatch(l); m != nil {
				if seen++; seen == n {
					p.mu.Unlock()
					return m
				}
			}
		}
		eof, changed := p.eof, p.changed
		p.mu.Unlock()
		if eof {
			p.t.Fatalf("%s exited before printing %d line(s) matching %q", p.name, n, re)
		}
		select {
		case <-changed:
		case <-deadline:
			p.t.Fatalf("timed out after %v waiting for %d line(s) of %s matching %q", timeout, n, p.name, re)
		}
	}
}

// WaitPID waits for a line matching re whose first submatch is a pid, and
// returns it.
func (p *Proc) WaitPID(re string, n int, timeout time.Duration) int {
	p.t.Helper()
	m := p.WaitLine(re, n, timeout)
	pid, err := strconv.Atoi(m[1])
	if err != nil {
		p.t.Fatalf("line matching %q: %q is not a pid", re, m[1])
	}
	return pid
}

// waitDone waits for the process to exit and then, briefly, for the rest of
// its output (a grandchild may hold the pipe open longer).
func (p *Proc) waitDone(timeout time.Duration) bool {
	if !p.waitState(timeout, func() bool { return p.done }) {
		return false
	}
	p.waitState(2*time.Second, func() bool { return p.eof })
	return true
}

func (p *Proc) waitState(timeout time.Duration, cond func() bool) bool {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		ok, changed := cond(), p.changed
		p.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-deadline:
			return false
		}
	}
}

// Exit is how a process ended.
type Exit struct {
	Code   int            // exit status when it exited
	Signal syscall.Signal // non-zero when it was killed by a signal
}

func (e Exit) String() string {
	if e.Signal != 0 {
		return fmt.Sprintf("killed by %v", e.Signal)
	}
	return fmt.Sprintf("exit %d", e.Code)
}

// Wait waits for the process to exit and returns how it ended.
func (p *Proc) Wait(timeout time.Duration) Exit {
	p.t.Helper()
	if !p.waitDone(timeout) {
		p.t.Fatalf("%s did not exit within %v", p.name, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status.Signaled() {
		return Exit{Signal: p.status.Signal()}
	}
	return Exit{Code: p.status.ExitStatus()}
}

// WaitFor polls cond until it is true or timeout passes, failing the test
// then with what. It is for conditions no event announces (a process
// disappearing from /proc); the poll interval is short and bounded by the
// deadline, not a synchronisation sleep.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Alive reports whether pid names a process that has not terminated (a
// zombie counts as terminated).
func Alive(pid int) bool { return procfs.Running(pid) }

// Children returns the pids of pid's children and how many are zombies.
func Children(pid int) (pids []int, zombies int) {
	for _, st := range procfs.All() {
		if st.PPID == pid {
			pids = append(pids, st.PID)
			if !st.Running() {
				zombies++
			}
		}
	}
	return pids, zombies
}

// Script writes an executable shell script into dir and returns its path.
func Script(t testing.TB, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	// Written with forks held off: a process another test forks meanwhile
	// would hold the open file until its exec, and the script's own exec
	// would then fail with ETXTBSY (golang/go#22315).
	syscall.ForkLock.Lock()
	err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755)
	syscall.ForkLock.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return path
}
