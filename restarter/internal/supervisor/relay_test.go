package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// The log relay (--log-relay), over fakeOS: the fake epochs write what the
// test says into the pipes they are given, and the restarter's own stdout
// and stderr are files in the test's temp dir.

// relayed is what the fake epochs were given and write, by RESTART_EPOCH.
type relayed struct {
	mu             sync.Mutex
	stdout, stderr map[string]string // what each epoch writes
	given          []*os.File        // each start's stdout, nil for the restarter's own
}

// relayRunner returns a runner with cfg.LogRelay set to mode, whose epochs
// write what out says, and the restarter's own output files.
func relayRunner(t *testing.T, mode config.LogRelay, f *fakeOS, out *relayed) (r *runner, logs *syncBuffer, stdout, stderr string) {
	t.Helper()
	cfg := testConfig()
	cfg.LogRelay = mode
	r, logs = fakeRunner(t, cfg, f)
	dir := t.TempDir()
	stdout, stderr = filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr")
	r.sys.stdout, r.sys.stderr = createFile(t, stdout), createFile(t, stderr)
	r.sys.start = func(path string, argv, env []string, dir string, o, e *os.File) (int, error) {
		out.mu.Lock()
		out.given = append(out.given, o)
		if o != nil {
			_, err := o.WriteString(out.stdout[epochOf(env)])
			require.NoError(t, err)
			_, err = e.WriteString(out.stderr[epochOf(env)])
			require.NoError(t, err)
		}
		out.mu.Unlock()
		return f.start(path, argv, env, dir, o, e)
	}
	t.Cleanup(r.closeRelay)
	return r, logs, stdout, stderr
}

func createFile(t *testing.T, path string) *os.File {
	t.Helper()
	file, err := os.Create(path)
	require.NoError(t, err)
	t.Cleanup(func() { file.Close() })
	return file
}

// eventuallyContains waits for the file at path to contain want.
func eventuallyContains(t *testing.T, path, want string) {
	t.Helper()
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(b), want)
	}, 10*time.Second, time.Millisecond, "%s never held %q", path, want)
}

const criticalLine = "[2026-11-24 19:20:00.456][7][critical][main] [source/server/server.cc:99] error initializing configuration 'envoy.yaml': bad listener"

func TestRelayNamesWhatAFailedEpochLastLogged(t *testing.T) {
	// Given epoch 1, which logs a critical line on stderr,
	f := newFakeOS()
	out := &relayed{
		stdout: map[string]string{"RESTART_EPOCH=1": "hello from epoch 1\n"},
		stderr: map[string]string{"RESTART_EPOCH=1": "[2026-11-24 19:20:00.123][7][info][main] [source/server/server.cc:1] starting\n" + criticalLine + "\n"},
	}
	r, logs, stdout, stderr := relayRunner(t, config.LogRelayAlways, f, out)
	_, ok := r.setUp()
	require.True(t, ok)
	handle(t, r, machine.Started{}, hup)
	// its output reaches the restarter's own, each on its stream;
	eventuallyContains(t, stderr, criticalLine+"\n")
	eventuallyContains(t, stdout, "hello from epoch 1\n")
	// when it exits 1,
	f.exit(machine.Exited{PID: 101, Code: 1})
	handle(t, r, nextWithin(t, r)...)

	// then its death names that line, without Envoy's prefix.
	const msg = "error initializing configuration 'envoy.yaml': bad listener"
	require.Contains(t, logs.String(), `epoch 1 (PID=101) last logged: "`+msg+`"`)
}

func TestRelayIsOnWhenAskedOrTheOutputIsAStream(t *testing.T) {
	tests := []struct {
		mode      config.LogRelay
		stream    bool
		wantPipes bool
	}{
		{config.LogRelayAlways, false, true},
		{config.LogRelayAuto, true, true},
		{config.LogRelayAuto, false, false},
		{config.LogRelayNever, true, false},
	}
	for _, tt := range tests {
		// Given --log-relay and what the restarter's output is,
		f := newFakeOS()
		out := &relayed{}
		r, _, _, _ := relayRunner(t, tt.mode, f, out)
		r.sys.isStream = func(*os.File) bool { return tt.stream }
		_, ok := r.setUp()
		require.True(t, ok)
		// when epoch 0 starts, then it writes into pipes of its own, or
		// into the restarter's output.
		handle(t, r, machine.Started{})
		require.Len(t, out.given, 1)
		require.Equal(t, tt.wantPipes, out.given[0] != nil, "mode %v, stream %v", tt.mode, tt.stream)
	}
}

func TestRelayPipeFailureLetsTheEpochWriteItself(t *testing.T) {
	for _, failing := range []int{1, 2} {
		// Given a relay whose first or second pipe for an epoch fails,
		f := newFakeOS()
		out := &relayed{}
		r, logs, _, _ := relayRunner(t, config.LogRelayAlways, f, out)
		_, ok := r.setUp()
		require.True(t, ok)
		var made []*os.File
		calls := 0
		r.sys.pipe = func() (*os.File, *os.File, error) {
			calls++
			if calls == failing {
				return nil, nil, syscall.EMFILE
			}
			pr, pw, err := os.Pipe()
			made = append(made, pr, pw)
			return pr, pw, err
		}
		// when epoch 0 starts, then it writes to the restarter's output
		// itself, with a warning,
		handle(t, r, machine.Started{})
		require.Equal(t, []*os.File{nil}, out.given)
		require.Contains(t, logs.String(), "log relay: too many open files; this epoch writes to the restarter's output itself")
		// and the pipe that was made is closed, not leaked.
		require.Len(t, made, 2)
		for _, p := range made {
			require.ErrorIs(t, p.Close(), os.ErrClosed)
		}
	}
}

func TestRelayClosesAFailedSpawnsPipes(t *testing.T) {
	// Given a relay, and an epoch that cannot start,
	f := newFakeOS()
	f.startErr = os.ErrPermission
	r, _, _, _ := relayRunner(t, config.LogRelayAlways, f, &relayed{})
	_, ok := r.setUp()
	require.True(t, ok)
	var made []*os.File
	r.sys.pipe = func() (*os.File, *os.File, error) {
		pr, pw, err := os.Pipe()
		made = append(made, pr, pw)
		return pr, pw, err
	}
	// when its spawn fails, the restarter exits 1
	code, done := r.handle([]machine.Event{machine.Started{}})
	require.True(t, done)
	require.Equal(t, machine.ExitError, code)
	// and both of its pipes are closed, either end.
	require.Len(t, made, 4)
	for _, p := range made {
		require.ErrorIs(t, p.Close(), os.ErrClosed)
	}
}

func TestRelayCountsTheLinesItDrops(t *testing.T) {
	// Given a relay whose log reader is gone (its stdout a pipe whose read
	// end is closed),
	f := newFakeOS()
	out := &relayed{stdout: map[string]string{"RESTART_EPOCH=0": "one\ntwo\nthree\n"}}
	r, _, _, _ := relayRunner(t, config.LogRelayAlways, f, out)
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	require.NoError(t, pr.Close())
	t.Cleanup(func() { pw.Close() })
	r.sys.stdout = pw
	_, ok := r.setUp()
	require.True(t, ok)
	// when epoch 0 writes three lines, then the metrics count them dropped.
	handle(t, r, machine.Started{})
	require.Eventually(t, func() bool {
		return strings.Contains(string(r.metricsText()), "envoy_restarter_log_lines_dropped_total 3\n")
	}, 10*time.Second, time.Millisecond)
}

func TestEnvoyMessage(t *testing.T) {
	tests := []struct{ line, want string }{
		{criticalLine, "error initializing configuration 'envoy.yaml': bad listener"},
		{"  [a][b]   spaced out  ", "spaced out"},
		{"[only][brackets]", "[only][brackets]"},
		{"[unclosed bracket", "[unclosed bracket"},
		{"no prefix at all", "no prefix at all"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, envoyMessage(tt.line), "%q", tt.line)
	}
}

func TestFirstErr(t *testing.T) {
	a, b := errors.New("a"), errors.New("b")
	require.NoError(t, firstErr())
	require.NoError(t, firstErr(nil, nil))
	require.Equal(t, b, firstErr(nil, b, a))
}
