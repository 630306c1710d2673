package supervisor

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/messages.golden from the restarter's output")

// TestOperatorMessages pins the log lines operators' searches and alerts
// rely on: hot-restarter.py's messages, in Envoy's log format (docs/DESIGN.md
// §5). It is the one test that compares message text; the machine's table
// tests leave log lines out. Run with -update to accept a deliberate
// change, and say why in the commit.
func TestOperatorMessages(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, f *fakeOS, r *runner) int
	}{
		{"hot restart, SIGUSR1, drain, SIGTERM", func(t *testing.T, f *fakeOS, r *runner) int {
			handle(t, r, machine.Started{}, hup, usr1)
			f.exit(machine.Exited{PID: 100}) // epoch 0 drained
			handle(t, r, nextWithin(t, r)...)
			f.raise(syscall.SIGTERM)
			return finish(t, r)
		}},
		{"SIGTERM while epoch 0 drains: the newest epoch first", func(t *testing.T, f *fakeOS, r *runner) int {
			handle(t, r, machine.Started{}, hup)
			f.raise(syscall.SIGTERM)
			return finish(t, r)
		}},
		{"a hot restart held while epoch N-3 exits", func(t *testing.T, f *fakeOS, r *runner) int {
			handle(t, r, machine.Started{}, machine.InitStarted{Epoch: 0}, machine.InitDone{Epoch: 0}, hup, hup, hup, hup)
			f.exit(machine.Exited{PID: 100}) // epoch 0, told to terminate when epoch 2 started
			handle(t, r, nextWithin(t, r)...)
			f.raise(syscall.SIGTERM)
			return finish(t, r)
		}},
		{"an epoch crashes", func(t *testing.T, f *fakeOS, r *runner) int {
			handle(t, r, machine.Started{}, hup)
			f.exit(machine.Exited{PID: 101, Signal: machine.SIGSEGV})
			return finish(t, r)
		}},
		{"children outlive the term wait", func(t *testing.T, f *fakeOS, r *runner) int {
			f.stubborn = true
			handle(t, r, machine.Started{})
			f.raise(syscall.SIGINT)
			handle(t, r, nextWithin(t, r)...)
			f.fire(0)
			return finish(t, r)
		}},
		{"a stop signal to the whole process group, the epoch's death seen first", func(t *testing.T, f *fakeOS, r *runner) int {
			handle(t, r, machine.Started{}, hup)
			f.exit(machine.Exited{PID: 101, Signal: machine.SIGTERM})
			handle(t, r, nextWithin(t, r)...)
			f.raise(syscall.SIGTERM)
			return finish(t, r)
		}},
		{"a second stop signal during the term wait", func(t *testing.T, f *fakeOS, r *runner) int {
			f.stubborn = true
			handle(t, r, machine.Started{})
			f.raise(syscall.SIGTERM)
			handle(t, r, nextWithin(t, r)...)
			f.raise(syscall.SIGINT)
			return finish(t, r)
		}},
		{"an epoch crashes during the stop", func(t *testing.T, f *fakeOS, r *runner) int {
			f.stubborn = true
			handle(t, r, machine.Started{})
			f.raise(syscall.SIGTERM)
			handle(t, r, nextWithin(t, r)...)
			f.exit(machine.Exited{PID: 100, Signal: machine.SIGSEGV})
			return finish(t, r)
		}},
		{"the last epoch exits", func(t *testing.T, f *fakeOS, r *runner) int {
			handle(t, r, machine.Started{})
			f.exit(machine.Exited{PID: 100, Code: 0})
			return finish(t, r)
		}},
	}
	var got strings.Builder
	for _, sc := range scenarios {
		f := newFakeOS()
		r, logs := fakeRunner(t, testConfig(), f)
		r.logStart()
		code := sc.run(t, f, r)
		fmt.Fprintf(&got, "# %s: exit %d\n%s\n", sc.name, code, normalize(logs.String()))
	}
	const golden = "testdata/messages.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got.String()); diff != "" {
		t.Errorf("operator messages changed (-want +got); they are a compatibility contract:\n%s", diff)
	}
}

// finish runs the loop until the machine exits and returns the code.
func finish(t *testing.T, r *runner) int {
	t.Helper()
	for range 100 {
		if code, done := r.handle(nextWithin(t, r)); done {
			return code
		}
	}
	t.Fatal("the restarter did not exit after 100 rounds")
	return -1
}

var timeAndPID = regexp.MustCompile(`(?m)^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\]\[\d+\]`)

// normalize replaces each line's time and pid, which change every run.
func normalize(logs string) string {
	return timeAndPID.ReplaceAllString(logs, "[TIME][PID]")
}
