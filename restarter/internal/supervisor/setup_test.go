package supervisor

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// fakePIDFile is a --pid-file whose write fails with writeErr.
type fakePIDFile struct {
	writeErr error
	released []int
}

func (p *fakePIDFile) Write(int) error              { return p.writeErr }
func (p *fakePIDFile) Release(pid int)              { p.released = append(p.released, pid) }
func (p *fakePIDFile) take(string) (pidFile, error) { return p, nil }

func TestRunSetUpFailsWithTheRightCode(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name string
		cfg  func(*config.Config)
		sys  func(*osEnv)
		code int
		log  string
	}{
		{"subreaper refused", func(c *config.Config) { c.Subreaper = true },
			func(s *osEnv) {
				s.becomeSubreaper = func() error { return errors.New("prctl: operation not permitted") }
			},
			machine.ExitError, "prctl: operation not permitted"},
		{"leftovers of an earlier run", func(*config.Config) {},
			func(s *osEnv) {
				s.checkLeftovers = func(string, func(string)) error { return errors.New("Envoy PID=77 of an earlier run still runs") }
			},
			machine.ExitError, "Envoy PID=77 of an earlier run still runs"},
		{"stale base id", func(c *config.Config) { c.BaseIDPath = "/run/envoy/base-id" },
			func(s *osEnv) { s.clearBaseID = func(string) error { return errBoom } },
			machine.ExitError, "boom"},
		{"watch", func(c *config.Config) { c.Watch = []string{"/etc/envoy/envoy.yaml"} },
			func(s *osEnv) {
				s.newWatcher = func([]string, time.Duration) (watcher, error) { return nil, errors.New("no such file") }
			},
			machine.ExitUsage, "flag -watch: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Given a set-up step that fails,
			cfg := testConfig()
			tt.cfg(&cfg)
			f := newFakeOS()
			r, logs := fakeRunner(t, cfg, f)
			tt.sys(&r.sys)
			// when the restarter runs, then it exits with the step's code,
			// having said why, and started no epoch.
			require.Equal(t, tt.code, r.run())
			require.Contains(t, logs.String(), tt.log)
			require.Zero(t, f.running())
		})
	}
}

func TestRunPIDFileWriteFailureReleasesIt(t *testing.T) {
	// Given a pid file taken that cannot be written,
	cfg := testConfig()
	cfg.PIDFile = filepath.Join(t.TempDir(), "restarter.pid")
	p := &fakePIDFile{writeErr: errors.New("write restarter.pid: no space left on device")}
	r, logs := fakeRunner(t, cfg, newFakeOS())
	r.sys.takePIDFile = p.take
	// when the restarter runs, then it exits 1, and gives the file back.
	require.Equal(t, machine.ExitError, r.run())
	require.Contains(t, logs.String(), "no space left on device")
	require.Equal(t, []int{4242}, p.released)
}

func TestSetUpAsPID1BecomesSubreaper(t *testing.T) {
	// Given a restarter that is PID 1 (a container's init), on a /proc that
	// is not its own,
	f := newFakeOS()
	r, logs := fakeRunner(t, testConfig(), f)
	r.sys.getpid = func() int { return 1 }
	r.sys.checkOwnProc = func() error { return errors.New("/proc is another pid namespace's") }
	// when it sets up, then it is a subreaper without being asked, and warns
	// that it cannot find orphans.
	_, ok := r.setUp()
	require.True(t, ok)
	require.Equal(t, []string{"subreaper"}, f.takeCalls())
	require.True(t, r.cfg.Subreaper)
	require.Contains(t, logs.String(), "subreaper: /proc is another pid namespace's: orphans are reaped, but not found and stopped at exit")
}

func TestInstanceIDIsWhatItRuns(t *testing.T) {
	cfg := func(path, dir string, args ...string) config.Config {
		return config.Config{Path: path, Dir: dir, Args: args}
	}
	// The same start script, named relative to --dir or absolutely, is the
	// same restarter;
	require.Equal(t, instanceID(cfg("/srv/start.sh", "/srv")), instanceID(cfg("start.sh", "/srv")))
	// relative to the working directory without --dir;
	wd := t.TempDir()
	t.Chdir(wd)
	require.Equal(t, instanceID(cfg(filepath.Join(wd, "start.sh"), "")), instanceID(cfg("start.sh", "")))
	// other arguments or another script are another restarter.
	require.NotEqual(t, instanceID(cfg("/srv/start.sh", "/srv")), instanceID(cfg("/srv/start.sh", "/srv", "-x")))
	require.NotEqual(t, instanceID(cfg("/srv/start.sh", "")), instanceID(cfg("/srv/other.sh", "")))
	// An argument's boundary counts: "ab" is not "a" "b".
	require.NotEqual(t, instanceID(cfg("/s", "", "ab")), instanceID(cfg("/s", "", "a", "b")))
}
