package server

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/config"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/hotrestart"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/stats"
)

// This file starts an epoch as Envoy's InstanceImpl does: options and
// bootstrap checked, the hot restart region and sockets opened, the admin
// and listeners bound, then the run loop.

func logRegion(logPath string, baseID uint32) error {
	if logPath == "" {
		return nil
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("%s=%s: %w", shmLogEnv, logPath, err)
	}
	defer f.Close()
	// One short write to an O_APPEND file: lines of concurrent epochs
	// never interleave.
	if _, err := fmt.Fprintf(f, "%d\n", baseID); err != nil {
		return fmt.Errorf("%s=%s: %w", shmLogEnv, logPath, err)
	}
	return nil
}

// validate is --mode validate: check the config, touch no hot restart
// state. Envoy prints the verdict on stdout; a failure is its critical log
// line only (validateConfig swallows the exception), exit 1. Its
// ValidationInstance has no --log-path file: the line goes to stderr.
func (s *Server) validate() int {
	cfg, err := s.loadBootstrap()
	if err == nil {
		_, err = cfg.Stats()
	}
	if err != nil {
		s.log.Critical("main", "error initializing configuration '%s': %v", s.opts.ConfigPath, err)
		return 1
	}
	fmt.Printf("configuration '%s' OK\n", s.opts.ConfigPath)
	return 0
}

// loadBootstrap is Envoy's InstanceUtil::loadBootstrapConfig, taking
// --fake-config-load-delay longer, as a large bootstrap does. No signal
// handler exists yet (in validate and init_only modes, none ever does), so
// SIGTERM, SIGINT, SIGUSR1 and SIGHUP kill the process meanwhile, as they
// kill an Envoy loading its config.
func (s *Server) loadBootstrap() (*config.Config, error) {
	time.Sleep(s.opts.FakeConfigLoadDelay)
	return config.Load(s.opts.ConfigPath)
}

// configError is a failure while the server initialises (bad bootstrap,
// an access log that cannot be opened, a port taken): Envoy logs it as
// critical, its main prints the bare message on stderr, and it exits 1.
// INITIALIZING stays set, as it does when Envoy dies here.
func (s *Server) configError(err error) int {
	s.log.Critical("main", "error initializing configuration '%s': %v", s.opts.ConfigPath, err)
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// fatal handles an error the way Envoy's main does: aborts for PANIC and
// RELEASE_ASSERT failures, otherwise the message on stderr and exit 1.
func (s *Server) fatal(err error) int {
	var f *hotrestart.FatalError
	if errors.As(err, &f) {
		s.log.Critical("assert", "assert failure: false. Details: %s", f.Message)
		abort()
	}
	fmt.Fprintln(os.Stderr, err)
	return 1
}

func (s *Server) openHotRestart() error {
	o := s.opts
	settings := hotrestart.Settings{
		BaseID: o.BaseID, Epoch: o.RestartEpoch, SocketPath: o.SocketPath, SocketMode: o.SocketMode,
		SkipHotRestartOnNoParent: o.SkipHotRestartOnNoParent, SkipHotRestartParentStats: o.SkipHotRestartParentStats,
		Version: s.version(), RetryDelay: o.FakeHotRestartRetryDelay,
	}
	var err error
	if o.UseDynamicBaseID {
		s.hr, err = hotrestart.OpenDynamic(settings, s.log, nil)
	} else {
		s.hr, err = hotrestart.Open(settings, s.log)
	}
	if err != nil {
		return err
	}
	s.baseID = s.hr.BaseID
	if err := logRegion(os.Getenv(shmLogEnv), s.baseID); err != nil {
		return err
	}
	// Envoy's hot restart parent counts itself in when it is set up.
	s.stats.Gauge(statGeneration, stats.Accumulate).Inc()
	if o.BaseIDPath != "" {
		// Decimal, no newline, as Envoy writes it.
		if err := os.WriteFile(o.BaseIDPath, []byte(strconv.FormatUint(uint64(s.baseID), 10)), 0o644); err != nil {
			s.log.Critical("main", "cannot open base id output file %s for writing.", o.BaseIDPath)
		}
	}
	return nil
}

func (s *Server) run() int {
	o := s.opts
	handleFatalSignals(s.log)
	if !o.DisableHotRestart {
		if err := s.openHotRestart(); err != nil {
			return s.fatal(err)
		}
		// If our parent ever goes away, terminate, as Envoy does.
		if err := setParentDeathSignal(); err != nil {
			return s.fatal(&hotrestart.FatalError{Message: fmt.Sprintf("prctl(PR_SET_PDEATHSIG): %v", err)})
		}
		// Envoy's Logger::Context: from here every line to stderr is
		// written holding the region's log_lock_, shared by all epochs.
		s.log.SetLock(s.hr.Shm.LogLock())
	}
	if err := s.openLogFiles(); err != nil {
		return s.configError(err)
	}
	s.log.Info("main", "initializing epoch %d (base id=%d, hot restart version=%s)", o.RestartEpoch, s.baseID, s.hotRestartVersion())
	cfg, err := s.loadBootstrap()
	if err != nil {
		return s.configError(err)
	}
	s.cfg = cfg
	if err := s.initialize(); err != nil {
		var fatal *hotrestart.FatalError
		if errors.As(err, &fatal) {
			return s.fatal(err)
		}
		return s.configError(err)
	}
	if o.Mode == "init_only" {
		return s.terminate()
	}
	return s.dispatch()
}

// terminate is --mode init_only's end, Envoy's InstanceImpl::terminate for
// a server that never ran: the server initialised (the parent's admin shut
// down, the admin bound and its address written, the listen sockets taken
// over or bound), there is a last stats flush if the flush timer exists
// (a stats exchange with the parent), then everything closes and it exits
// 0. The workers never start, so the parent is never told to drain nor to
// terminate, and INITIALIZING stays set.
func (s *Server) terminate() int {
	if s.statsFlush != nil {
		if err := s.flushStats(); err != nil {
			return s.fatal(err)
		}
	}
	close(s.done)
	s.stop()
	s.log.Info("main", "exiting")
	return 0
}

// initialize follows Envoy's InstanceImpl::initialize after the bootstrap
// is loaded: ask the parent to shut down its admin (it then terminates its
// own parent), bind the admin, read the stats config, then build the
// listeners (sockets from the parent, or bound here) and open their access
// logs. Failures from here on come after the parent lost its admin: the
// new epoch exits 1 and the old one keeps serving without an admin, as
// with Envoy. Last, the stats flush timer is armed, unless
// stats_flush_on_admin.
func (s *Server) initialize() error {
	if s.hr != nil {
		start, err := s.hr.Child.ShutdownParentAdmin()
		if err != nil {
			return err
		}
		if start != 0 {
			s.originalStart = start
		}
	}
	// Read before the admin serves /stats; Envoy fails on it after.
	statsConfig, statsErr := s.cfg.Stats()
	s.statsConfig = statsConfig
	if err := s.bindAdmin(); err != nil {
		return err
	}
	if statsErr != nil {
		return statsErr
	}
	if err := s.openAccessLogs(); err != nil {
		return err
	}
	for _, c := range s.cfg.Listeners {
		l, err := s.newListener(c)
		if err != nil {
			return err
		}
		s.listeners = append(s.listeners, l)
	}
	if !s.statsConfig.FlushOnAdmin {
		s.statsFlush = time.NewTimer(s.statsFlushInterval())
	}
	return nil
}

// statsFlushInterval is the bootstrap's stats_flush_interval, or
// --fake-stats-flush-interval when given.
func (s *Server) statsFlushInterval() time.Duration {
	if s.opts.FakeStatsFlushInterval > 0 {
		return s.opts.FakeStatsFlushInterval
	}
	return s.statsConfig.FlushInterval
}

// bindAdmin binds the admin listener and writes --admin-address-path.
func (s *Server) bindAdmin() error {
	a := s.cfg.Admin
	if a == nil {
		s.log.Warn("main", "No admin address given, so no admin HTTP server started.")
		return nil
	}
	ln, err := bind(*a, false)
	if err != nil {
		return bindError(*a, err)
	}
	s.startAdmin(ln)
	s.log.Info("main", "admin address: %s", ln.Addr())
	if p := s.opts.AdminAddressPath; p != "" {
		// ip:port, no newline, as Envoy writes it; failure is only logged.
		if err := os.WriteFile(p, []byte(ln.Addr().String()), 0o644); err != nil {
			s.log.Critical("main", "cannot open admin address output file %s for writing.", p)
		}
	}
	return nil
}

// newListener builds one listener and its listen sockets (sockets.go).
func (s *Server) newListener(c config.Listener) (*listener, error) {
	l := &listener{
		cfg: c, epoch: s.opts.RestartEpoch, pid: os.Getpid(),
		drain: listenerDrain(s.drain, c.Inbound, c.DrainModifyOnly), connections: &s.connections,
	}
	if c.HTTP != nil {
		l.httpStats = newHTTPStats(s.stats, c.HTTP.StatPrefix)
		rt := &router{
			l: l, http: c.HTTP, clusters: s.cfg.Clusters,
			healthCheckFailed: &s.healthCheckFailed, serviceCluster: s.opts.ServiceCluster,
		}
		for _, p := range c.HTTP.AccessLogPaths {
			rt.logs = append(rt.logs, s.accessLogs[p])
		}
		l.router = rt
	}
	for i, a := range c.Addresses {
		if err := s.addSockets(l, i, a); err != nil {
			l.stopAccepting()
			return nil, err
		}
	}
	return l, nil
}
