package supervisor

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// initializingGate is a fakeGate whose epochs hold the INITIALIZING flag
// before their watchers found it.
type initializingGate struct {
	*fakeGate
	pid int // holds the flag now
}

func (g initializingGate) InitializingNow(pid int) bool { return pid == g.pid }

func TestSIGHUPLooksAtTheNewestEpochsFlagAtOnce(t *testing.T) {
	// Given epoch 0, initializing, its watcher not having found the flag yet,
	f := newFakeOS()
	cfg := testConfig()
	cfg.InitGate = config.InitGateAuto
	r, logs := fakeRunner(t, cfg, f)
	r.gate = initializingGate{fakeGate: f.gate, pid: 100}
	handle(t, r, machine.Started{})
	f.takeCalls()
	// when SIGHUP comes, then the loop sees epoch 0 initializing first,
	f.raise(syscall.SIGHUP)
	evs := nextWithin(t, r)
	require.Equal(t, []machine.Event{machine.InitStarted{Epoch: 0}, hup}, evs)
	// and the hot restart waits for it, forking nothing yet.
	handle(t, r, evs...)
	require.Contains(t, logs.String(), "epoch 0 is initializing")
	require.Empty(t, f.takeCalls())
	require.Equal(t, 0, newestEpochOf(r))
}

func TestReadyCmdFailureQuotesItsLastLine(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name, out, want string
	}{
		{"no output", "", "/bin/ready: exit status 1"},
		{"its last line", "starting\nlistener not bound yet \n\n", `/bin/ready: exit status 1 "listener not bound yet"`},
		{"cut at 80 bytes", long, `/bin/ready: exit status 1 "` + long[:80] + `..."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Given a readiness command that fails with output,
			f := newFakeOS()
			f.runHelper = func(context.Context, *exec.Cmd) (string, error) {
				return tt.out, errors.New("exit status 1")
			}
			cfg := testConfig()
			cfg.ReadyCmd = []string{"/bin/ready"}
			r, _ := fakeRunner(t, cfg, f)
			// then why the epoch is not ready quotes it.
			require.EqualError(t, r.probeCmd(context.Background(), 1, 101), tt.want)
		})
	}
}

// countingGate counts the loop's own looks at the flag.
type countingGate struct {
	*fakeGate
	looks *int
}

func (g countingGate) InitializingNow(int) bool { *g.looks++; return true }

func TestSIGHUPLooksOnlyAtAnEpochItsWatcherHasNotToldOf(t *testing.T) {
	// Given epoch 0, seen initializing by its watcher,
	f := newFakeOS()
	cfg := testConfig()
	cfg.InitGate = config.InitGateAuto
	r, _ := fakeRunner(t, cfg, f)
	looks := 0
	r.gate = countingGate{fakeGate: f.gate, looks: &looks}
	handle(t, r, machine.Started{})
	handle(t, r, machine.InitStarted{Epoch: 0})
	f.takeCalls()
	// when SIGHUP comes, then the loop does not look again: the machine knows.
	f.raise(syscall.SIGHUP)
	require.Equal(t, []machine.Event{hup}, nextWithin(t, r))
	require.Zero(t, looks)
}
