package supervisor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/control"
	"github.com/envoy-restarter/restarter/restarter/internal/logging"
	"github.com/envoy-restarter/restarter/restarter/internal/osproc"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"

	"github.com/stretchr/testify/require"
)

// The event loop's rules, tested in process over fakeOS: the test steps
// the loop itself (handle, next), so every interleaving is deterministic.

// handle feeds events to the runner and fails the test if it exits.
func handle(t *testing.T, r *runner, events ...machine.Event) {
	t.Helper()
	if code, done := r.handle(events); done {
		t.Fatalf("runner exited with %d", code)
	}
}

// nextWithin returns the loop's next events, failing after a deadline.
func nextWithin(t *testing.T, r *runner) []machine.Event {
	t.Helper()
	got := make(chan []machine.Event, 1)
	go func() { got <- r.next() }()
	select {
	case evs := <-got:
		return evs
	case <-time.After(10 * time.Second):
		t.Fatal("the event loop got nothing within 10s")
		return nil
	}
}

func TestLoopCollectsExitsBeforeAnythingElse(t *testing.T) {
	exit := machine.Exited{PID: 101, Code: 1}
	tests := []struct {
		name   string
		arrive func(t *testing.T, f *fakeOS, r *runner)
		want   machine.Event
	}{
		{"signal", func(t *testing.T, f *fakeOS, r *runner) { f.raise(syscall.SIGTERM) }, term},
		{"timer", func(t *testing.T, f *fakeOS, r *runner) {
			r.setTimer(machine.TermWaitTimer, time.Hour)
			f.fire(len(f.timers) - 1)
		}, machine.TimerFired{Timer: machine.TermWaitTimer}},
		{"check outcome", func(t *testing.T, f *fakeOS, r *runner) {
			r.report(r.ctx, machine.CheckFinished{Epoch: 2})
		}, machine.CheckFinished{Epoch: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Given two epochs, the newer of which just died, its SIGCHLD not
			// delivered yet,
			f := newFakeOS()
			r, _ := fakeRunner(t, testConfig(), f)
			handle(t, r, machine.Started{}, hup)
			f.mu.Lock()
			delete(f.live, 101)
			f.zombies[101] = exit
			f.mu.Unlock()
			// when something else arrives at the same moment,
			tt.arrive(t, f, r)
			// then the machine hears of the death first.
			require.Equal(t, []machine.Event{exit, tt.want}, nextWithin(t, r))
		})
	}
}

func TestLoopSIGTERMDuringAbnormalExitKillsNotTerms(t *testing.T) {
	// Given two epochs; epoch 1 crashes and SIGTERM arrives before SIGCHLD.
	f := newFakeOS()
	r, _ := fakeRunner(t, testConfig(), f)
	handle(t, r, machine.Started{}, hup)
	f.takeCalls()
	f.mu.Lock()
	delete(f.live, 101)
	f.zombies[101] = machine.Exited{PID: 101, Signal: machine.SIGSEGV}
	f.mu.Unlock()
	f.raise(syscall.SIGTERM)
	handle(t, r, nextWithin(t, r)...)
	// The failure wins: epoch 0 is KILLed, never TERMed.
	require.Equal(t, []string{"kill 100 SIGKILL"}, f.takeCalls())
	code, done := r.handle(nextWithin(t, r))
	require.True(t, done)
	require.Equal(t, machine.ExitError, code)
}

func TestLoopFeedsASpawnsOutcomeFirst(t *testing.T) {
	f := newFakeOS()
	r, _ := fakeRunner(t, testConfig(), f)
	handle(t, r, machine.Started{})
	// SIGHUP and SIGUSR1 in one batch: the new epoch is booked before the
	// SIGUSR1 is handled, so it gets the signal too.
	handle(t, r, hup, usr1)
	require.Equal(t, []string{
		"start ./start.sh -x pid=100 RESTART_EPOCH=0",
		"start ./start.sh -x pid=101 RESTART_EPOCH=1",
		"kill 100 SIGUSR1",
		"kill 101 SIGUSR1",
	}, f.takeCalls())
}

func TestLoopChildDyingAtOnceIsAFailedEpoch(t *testing.T) {
	f := newFakeOS()
	r, logs := fakeRunner(t, testConfig(), f)
	handle(t, r, machine.Started{})
	f.onStart = func(pid int) { f.exit(machine.Exited{PID: pid, Code: 127}) } // dies before start returns
	handle(t, r, hup)
	handle(t, r, nextWithin(t, r)...)
	require.Contains(t, f.takeCalls(), "kill 100 SIGKILL")
	require.NotContains(t, logs.String(), "not an epoch")
	require.Contains(t, logs.String(), "PID=101 exited with code=127")
}

func TestLoopDropsStaleTimersAndOutcomes(t *testing.T) {
	// Given readiness by command: epoch 0 is ready at once, epoch 1 only
	// when the test says so.
	f := newFakeOS()
	cfg := testConfig()
	cfg.ReadyCmd = []string{"/bin/ready"}
	release := make(chan struct{})
	f.runHelper = func(ctx context.Context, cmd *exec.Cmd) (string, error) {
		if slices.Contains(cmd.Env, "RESTART_EPOCH=0") {
			return "", nil
		}
		<-release // ignores ctx: its answer arrives after its watch was stopped
		return "", nil
	}
	r, _ := fakeRunner(t, cfg, f)
	handle(t, r, machine.Started{})
	require.Len(t, f.timers, 1) // epoch 0's ready timeout
	handle(t, r, nextWithin(t, r)...)
	require.True(t, f.timers[0].stopped, "epoch 0 is ready: its ready timeout must be stopped")

	// When epoch 1 starts, epoch 0's old timeout fires late: dropped, it must
	// not count against epoch 1.
	handle(t, r, hup)
	require.Len(t, f.timers, 2)
	f.fire(0)
	require.Empty(t, nextWithin(t, r))

	// Epoch 1's own timeout kills it, and stops its watch.
	f.takeCalls()
	f.fire(1)
	handle(t, r, nextWithin(t, r)...)
	require.Equal(t, []string{"kill 101 SIGKILL"}, f.takeCalls())
	require.NotContains(t, r.tasks, task{readyTask, 1})
	// The stopped watch's late Ready is dropped: the loop hears only of the
	// KILLed epoch's death.
	close(release)
	got := append(nextWithin(t, r), nextWithin(t, r)...)
	require.Equal(t, []machine.Event{machine.Exited{PID: 101, Signal: machine.SIGKILL}}, got)
}

func TestLoopStopsProbingADeadEpoch(t *testing.T) {
	// Given an epoch 1 whose readiness command never succeeds,
	f := newFakeOS()
	cfg := testConfig()
	cfg.ReadyCmd = []string{"/bin/ready"}
	probing := make(chan struct{}, 1)
	stopped := make(chan struct{})
	f.runHelper = func(ctx context.Context, cmd *exec.Cmd) (string, error) {
		if slices.Contains(cmd.Env, "RESTART_EPOCH=0") {
			return "", nil
		}
		select {
		case probing <- struct{}{}:
		default:
		}
		<-ctx.Done()
		close(stopped)
		return "", ctx.Err()
	}
	r, _ := fakeRunner(t, cfg, f)
	handle(t, r, machine.Started{})
	handle(t, r, nextWithin(t, r)...) // epoch 0 ready
	handle(t, r, hup)
	<-probing
	// when it exits 0 before it is ready,
	f.exit(machine.Exited{PID: 101})
	handle(t, r, nextWithin(t, r)...)
	// then its probe is stopped at once, not at --ready-timeout.
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("still probing a dead epoch")
	}
	require.Empty(t, r.tasks)
	require.True(t, f.timers[1].stopped, "its ready timeout is stopped too")
}

func TestLoopStopsTheCheckOnShutdown(t *testing.T) {
	// Given a check that runs until it is stopped, and an epoch that takes
	// its time to exit on SIGTERM,
	f := newFakeOS()
	f.stubborn = true
	cfg := testConfig()
	cfg.Check = []string{"/bin/check"}
	stopped := make(chan struct{})
	f.runHelper = func(ctx context.Context, cmd *exec.Cmd) (string, error) {
		<-ctx.Done()
		close(stopped)
		return "", ctx.Err()
	}
	r, _ := fakeRunner(t, cfg, f)
	handle(t, r, machine.Started{}, hup)
	// when SIGTERM comes during the check, the check is stopped,
	f.raise(syscall.SIGTERM)
	handle(t, r, nextWithin(t, r)...)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the check still runs after SIGTERM")
	}
	// and its outcome is dropped.
	require.Empty(t, nextWithin(t, r))
}

func TestCheckOutcomes(t *testing.T) {
	sh := func(script string) []string { return []string{"/bin/sh", "-c", script} }
	tests := []struct {
		name    string
		check   []string
		timeout time.Duration
		want    machine.CheckFinished
	}{
		{"passes", sh("echo RESTART_EPOCH=$RESTART_EPOCH"), 5 * time.Second, machine.CheckFinished{Epoch: 1, Output: "RESTART_EPOCH=1\n"}},
		{"refuses", sh("echo bad listener; exit 3"), 5 * time.Second, machine.CheckFinished{Epoch: 1, Err: "/bin/sh: exit status 3", Output: "bad listener\n"}},
		{"times out", sh("exec sleep 30"), 100 * time.Millisecond, machine.CheckFinished{Epoch: 1, Err: "/bin/sh did not finish within --check-timeout=100ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeOS()
			cfg := testConfig()
			cfg.Check, cfg.CheckTimeout = tt.check, tt.timeout
			r, _ := fakeRunner(t, cfg, f) // checks run for real
			_, pending := r.startCheck(1)
			require.True(t, pending)
			require.Equal(t, []machine.Event{tt.want}, nextWithin(t, r))
			require.NotContains(t, r.tasks, task{checkTask, 0}, "a finished check is released")
		})
	}
}

// testForker is the real OS layer's forker, shared by the tests.
var testForker = osproc.NewForker()

func TestBaseIDFlowsFromEpoch0ToLaterEpochs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "base-id")
	require.NoError(t, os.WriteFile(path, []byte("7"), 0o644)) // left by an earlier run
	f := newFakeOS()
	cfg := testConfig()
	cfg.BaseIDPath = path
	r, _ := fakeRunner(t, cfg, f)
	var envs [][]string
	r.sys.start = func(path string, argv, env []string, dir string, stdout, stderr *os.File) (int, error) {
		envs = append(envs, env)
		return f.start(path, argv, env, dir, stdout, stderr)
	}

	_, ok := r.setUp()
	require.True(t, ok)
	handle(t, r, machine.Started{})
	require.NoFileExists(t, path, "epoch 0 must not see the stale id")
	instance := osproc.InstanceEnv + "=" + instanceID(cfg)
	require.Equal(t, []string{"PATH=/bin", "RESTART_EPOCH=0", instance, "ENVOY_BASE_ID_PATH=" + path}, envs[0])

	require.NoError(t, os.WriteFile(path, []byte("42"), 0o644)) // epoch 0 wrote its id
	handle(t, r, hup)
	require.Equal(t, []string{"PATH=/bin", "RESTART_EPOCH=1", instance, "ENVOY_BASE_ID_PATH=" + path, "ENVOY_BASE_ID=42"}, envs[1])

	require.NoError(t, os.WriteFile(path, []byte("not an id"), 0o644))
	ev, pending := r.startCheck(2)
	require.False(t, pending)
	require.Equal(t, machine.CheckFinished{Epoch: 2, Err: "base id: " + path + `: "not an id" is not a base id`}, ev)
	os.Remove(path)
	ev, _ = r.startCheck(2)
	require.Contains(t, ev.Err, "no such file or directory")
}

func TestNotify(t *testing.T) {
	f := newFakeOS()
	f.getenv["NOTIFY_SOCKET"] = "/run/notify"
	r, _ := fakeRunner(t, testConfig(), f)
	handle(t, r, machine.Started{}, hup)
	f.raise(syscall.SIGTERM)
	code, done := r.handle(nextWithin(t, r))
	require.False(t, done, "TERMed children exit: SIGCHLD still to come (code %d)", code)
	var notes []string
	for _, c := range f.takeCalls() {
		if strings.HasPrefix(c, "notify ") {
			notes = append(notes, c)
		}
	}
	require.Equal(t, []string{
		"notify READY=1 STATUS=epoch 0 live (PID=100) MAINPID=4242",
		"notify RELOADING=1 MONOTONIC_USEC=1234 STATUS=hot restart to epoch 1 MAINPID=4242",
		"notify READY=1 STATUS=epoch 1 live (PID=101) MAINPID=4242",
		"notify STOPPING=1 STATUS=shutting down MAINPID=4242",
	}, notes)
}

// runLoop runs r's whole loop in the background and returns its exit code
// on a channel.
func runLoop(r *runner) <-chan int {
	code := make(chan int, 1)
	go func() { code <- r.run() }()
	return code
}

func waitCode(t *testing.T, code <-chan int) int {
	t.Helper()
	select {
	case c := <-code:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the restarter did not exit within 10s")
		return -1
	}
}

func TestRunServesControlAndCleansUp(t *testing.T) {
	// Given a restarter with a pid file and a control socket,
	dir := t.TempDir()
	cfg := testConfig()
	cfg.PIDFile = filepath.Join(dir, "restarter.pid")
	cfg.ControlSocket = filepath.Join(dir, "control.sock")
	f := newFakeOS()
	r, logs := fakeRunner(t, cfg, f)
	code := runLoop(r)

	// status and reload work once it is up,
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "forked new child process with PID=100") }, 10*time.Second, time.Millisecond)
	b, err := os.ReadFile(cfg.PIDFile)
	require.NoError(t, err)
	require.Equal(t, "4242\n", string(b))
	reply, err := control.Ask(cfg.ControlSocket, "reload", 10*time.Second)
	require.NoError(t, err)
	require.True(t, reply.OK)
	require.Equal(t, 1, *reply.Epoch)
	reply, err = control.Ask(cfg.ControlSocket, "status", 10*time.Second)
	require.NoError(t, err)
	require.Len(t, reply.Status.Epochs, 2)

	// and SIGTERM ends it with 0, its files removed.
	f.raise(syscall.SIGTERM)
	require.Equal(t, machine.ExitClean, waitCode(t, code))
	require.NoFileExists(t, cfg.PIDFile)
	require.NoFileExists(t, cfg.ControlSocket)
	require.Zero(t, f.running())
}

func TestRunSetUpFailures(t *testing.T) {
	dir := t.TempDir()
	t.Run("pid file", func(t *testing.T) {
		cfg := testConfig()
		cfg.PIDFile = filepath.Join(dir, "missing", "restarter.pid")
		r, logs := fakeRunner(t, cfg, newFakeOS())
		require.Equal(t, machine.ExitError, r.run())
		require.Contains(t, logs.String(), "pid file "+cfg.PIDFile+": no such file or directory")
	})
	t.Run("control socket", func(t *testing.T) {
		cfg := testConfig()
		cfg.PIDFile = filepath.Join(dir, "restarter.pid")
		cfg.ControlSocket = filepath.Join(dir, "missing", "control.sock")
		r, logs := fakeRunner(t, cfg, newFakeOS())
		require.Equal(t, machine.ExitError, r.run())
		require.Contains(t, logs.String(), "control socket: ")
		require.NoFileExists(t, cfg.PIDFile, "a failed set-up leaves nothing behind")
	})
	t.Run("subreaper", func(t *testing.T) {
		cfg := testConfig()
		cfg.Subreaper = true
		f := newFakeOS()
		r, _ := fakeRunner(t, cfg, f)
		f.mu.Lock()
		f.orphans = []machine.Exited{{PID: 777}}
		f.mu.Unlock()
		_, ok := r.setUp()
		require.True(t, ok)
		handle(t, r, machine.Started{})
		f.raise(syscall.SIGCHLD)
		require.Equal(t, []machine.Event{machine.Exited{PID: 777}}, nextWithin(t, r))
		require.Equal(t, "subreaper", f.takeCalls()[0])
	})
}

func TestRunSpawnFailure(t *testing.T) {
	f := newFakeOS()
	f.startErr = os.ErrPermission
	r, logs := fakeRunner(t, testConfig(), f)
	require.Equal(t, machine.ExitError, r.run())
	require.Contains(t, logs.String(), "epoch 0: permission denied")
}

func TestRunKillsStubbornChildrenAfterTermWait(t *testing.T) {
	f := newFakeOS()
	f.stubborn = true
	r, _ := fakeRunner(t, testConfig(), f)
	handle(t, r, machine.Started{})
	f.raise(syscall.SIGTERM)
	handle(t, r, nextWithin(t, r)...)
	require.Equal(t, testTermWait, f.timers[0].after)
	f.fire(0)
	handle(t, r, nextWithin(t, r)...) // the term wait: KILL
	code, done := r.handle(nextWithin(t, r))
	require.True(t, done)
	require.Equal(t, machine.ExitError, code)
}

// TestRunRealOS runs the whole restarter in process on the real OS layer:
// a start script that exits 0 at once ends it with 0.
func TestRunRealOS(t *testing.T) {
	cfg := testConfig()
	cfg.Command, cfg.Path, cfg.Args = "/bin/sh", "/bin/sh", []string{"-c", "test \"$RESTART_EPOCH\" = 0"}
	var logs syncBuffer
	require.Equal(t, machine.ExitClean, Run(cfg, logging.New(&logs, logging.Text)))
	require.Contains(t, logs.String(), "exited with code=0")
	require.Contains(t, logs.String(), "exiting due to lack of child processes")
}

// releaseTimers returns the fake timers armed for a memory release, by
// their delay.
func releaseTimers(f *fakeOS) []*fakeTimer {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakeTimer
	for _, t := range f.timers {
		if t.after >= releaseQuiet && t.after <= releaseEvery {
			out = append(out, t)
		}
	}
	return out
}

// waitCall waits for the fake OS to record call (made off the event loop).
func waitCall(t *testing.T, f *fakeOS, call string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(f.takeCalls(), call) {
		require.True(t, time.Now().Before(deadline), "no %q within 10s", call)
		time.Sleep(time.Millisecond)
	}
}

func TestLoopReleasesMemoryOnceTheRestartIsDoneNotAtTheSpawn(t *testing.T) {
	// Given a restart that is done once its epoch is ready (a readiness
	// command that answers when the test says so),
	f := newFakeOS()
	cfg := testConfig()
	cfg.ReadyCmd = []string{"/bin/ready"}
	ready := make(chan struct{}, 4)
	f.runHelper = func(ctx context.Context, cmd *exec.Cmd) (string, error) {
		<-ready
		return "", nil
	}
	r, _ := fakeRunner(t, cfg, f)
	ready <- struct{}{}
	handle(t, r, machine.Started{})
	handle(t, r, nextWithin(t, r)...) // epoch 0 ready
	require.Empty(t, releaseTimers(f), "epoch 0's start leaves nothing to release")

	// when SIGHUP starts epoch 1, then nothing is released at the spawn,
	// nor armed while the restart is under way;
	f.takeCalls()
	handle(t, r, hup)
	require.Equal(t, []string{"start ./start.sh -x pid=101 RESTART_EPOCH=1"}, f.takeCalls())
	require.Empty(t, releaseTimers(f))

	// once epoch 1 is ready, the release is armed for releaseQuiet later,
	ready <- struct{}{}
	handle(t, r, nextWithin(t, r)...)
	armed := releaseTimers(f)
	require.Len(t, armed, 1)
	require.Equal(t, releaseQuiet, armed[0].after)

	// and when it fires during the next restart, it waits for that one;
	handle(t, r, hup)
	armed[0].fn()
	handle(t, r, nextWithin(t, r)...)
	time.Sleep(10 * time.Millisecond) // (a release would run off the loop)
	require.NotContains(t, f.takeCalls(), "release memory")
	ready <- struct{}{}
	handle(t, r, nextWithin(t, r)...)
	armed = releaseTimers(f)
	require.Len(t, armed, 2, "armed again once epoch 2 is ready")
	armed[1].fn()
	handle(t, r, nextWithin(t, r)...)
	waitCall(t, f, "release memory")

	// then the next restart's release comes no sooner than releaseEvery
	// after this one.
	handle(t, r, hup)
	ready <- struct{}{}
	handle(t, r, nextWithin(t, r)...)
	armed = releaseTimers(f)
	require.Len(t, armed, 3)
	require.Greater(t, armed[2].after, releaseEvery-time.Second)
}

func TestLoopHurriesTheInitGateWhileARestartIsQueued(t *testing.T) {
	// Given the init gate, and epoch 1 seen initializing,
	f := newFakeOS()
	cfg := testConfig()
	cfg.InitGate = config.InitGateAuto
	r, _ := fakeRunner(t, cfg, f)
	handle(t, r, machine.Started{}, hup, machine.InitStarted{Epoch: 1})

	// when a SIGHUP is queued behind it, then the gate is told to hurry,
	handle(t, r, hup)
	require.Equal(t, []bool{false, true}, f.gate.queued)

	// and once the queued restart has started, no longer.
	handle(t, r, machine.InitDone{Epoch: 1})
	require.Equal(t, 2, newestEpochOf(r))
	require.Equal(t, []bool{false, true, false}, f.gate.queued)
}

// The loop drives the init gate through the OS interface: it watches every
// epoch, forks the next one known to be Envoy, and heals a flag a dead
// epoch left set.
func TestLoopDrivesTheInitGate(t *testing.T) {
	f := newFakeOS()
	cfg := testConfig()
	cfg.InitGate, cfg.OnFailedRestart = config.InitGateAuto, config.FailedRestartKeep
	r, logs := fakeRunner(t, cfg, f)
	handle(t, r, machine.Started{})

	// Given epoch 0 (PID 100) seen initializing by its watcher,
	f.gate.report(t, 100, machine.InitStarted{Epoch: 0})
	handle(t, r, nextWithin(t, r)...)
	require.Contains(t, logs.String(), "epoch 0 is initializing")
	f.gate.mu.Lock()
	f.gate.envoy = true // the watcher found Envoy's region
	f.gate.mu.Unlock()

	// a SIGHUP waits for its flag to clear,
	handle(t, r, hup)
	require.Equal(t, 0, newestEpochOf(r))
	f.gate.report(t, 100, machine.InitDone{Epoch: 0})
	handle(t, r, nextWithin(t, r)...)

	// then epoch 1 is forked, watched, and held as initializing from its fork,
	require.Equal(t, 1, newestEpochOf(r))
	f.gate.report(t, 101, machine.InitStarted{Epoch: 1})
	handle(t, r, nextWithin(t, r)...)

	// and when it dies initializing, under --on-failed-restart keep, the
	// flag it left set is healed.
	f.gate.mu.Lock()
	f.gate.flagSet = true
	f.gate.mu.Unlock()
	f.exit(machine.Exited{PID: 101, Code: 1})
	handle(t, r, nextWithin(t, r)...)
	require.Contains(t, logs.String(), "cleared Envoy's INITIALIZING flag, left set by epoch 1 (PID=101)")
	require.False(t, f.gate.ClearInit(), "cleared once")
}

func newestEpochOf(r *runner) int {
	epoch, _, _ := r.machine.Newest()
	return epoch
}
