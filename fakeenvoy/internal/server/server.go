// Package server is fakeenvoy's process: it wires options, config, hot
// restart, listeners, admin and signals together the way Envoy's server
// does, and logs Envoy's messages on the way.
package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/accesslog"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/config"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/envoylog"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/hotrestart"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/options"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/sigdefault"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/stats"
	"github.com/envoy-restarter/restarter/internal/atomicfile"
)

// Init states: whether the epoch's init manager is done (LIVE, or DRAINING
// while its health check is failed), see serverState.
const (
	stateInitializing int32 = iota
	stateLive
)

// Server is one running epoch. Everything that changes it runs on the
// dispatcher goroutine (Run's loop); HTTP handlers only read atomics.
type Server struct {
	opts          *options.Options
	log           *envoylog.Logger
	cfg           *config.Config
	hr            *hotrestart.HotRestart // nil with --disable-hot-restart
	baseID        uint32
	startTime     time.Time
	originalStart int64
	state         atomic.Int32
	drain         *drainManager
	admin         *admin
	listeners     []*listener
	// logFiles is the access log manager: the access logs and the
	// --log-path log, buffered (nil until hot restart is set up).
	logFiles   *accesslog.Manager
	accessLogs map[string]*accesslog.File
	events     chan func()
	done       chan struct{}
	quit       chan struct{}
	quitOnce   sync.Once
	// healthCheckFailed is Envoy's !live_: set by /healthcheck/fail,
	// cleared by /healthcheck/ok.
	healthCheckFailed atomic.Bool
	// connections counts open connections on the listeners (not the admin).
	connections atomic.Int64
	// stats is the epoch's stats store; merger takes the parent's stats
	// from the first stats exchange until the parent is terminated (nil
	// otherwise). Both change on the dispatcher only.
	stats       *stats.Store
	serverStats serverStats
	merger      *stats.Merger
	// statsConfig is the bootstrap's; statsFlush is Envoy's stat flush
	// timer, nil with stats_flush_on_admin or once the admin was shut down
	// for a child (Envoy resets the timer then).
	statsConfig config.StatsConfig
	statsFlush  *time.Timer
}

// Main runs fakeenvoy with args (without the program name) and returns the
// exit code. execNanos is CLOCK_MONOTONIC as read first thing in main.
func Main(args []string, execNanos int64) int {
	// As Envoy (Libevent::Global::initialize): a broken pipe is an error
	// code, never a signal, so a log reader that went away kills nothing.
	signal.Ignore(syscall.SIGPIPE)
	opts, err := options.Parse(args, func(enabled bool) string {
		if !enabled {
			return "disabled"
		}
		return hotrestart.VersionString(hotrestart.Version)
	})
	if err != nil {
		var exit *options.ExitError
		if errors.As(err, &exit) {
			switch {
			case exit.Raw:
				fmt.Fprint(os.Stderr, exit.Message)
			case exit.Message != "":
				fmt.Fprintln(os.Stderr, exit.Message)
			}
			return exit.Code
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if opts.FakeExecTimestampPath != "" {
		if err := atomicfile.Write(opts.FakeExecTimestampPath, []byte(strconv.FormatInt(execNanos, 10))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	s := &Server{
		opts: opts, log: envoylog.New(), startTime: time.Now(), baseID: opts.BaseID,
		accessLogs: map[string]*accesslog.File{},
		events:     make(chan func()), done: make(chan struct{}), quit: make(chan struct{}),
		stats: stats.New(),
	}
	s.serverStats = newServerStats(s.stats)
	s.serverStats.epoch.Set(uint64(opts.RestartEpoch))
	// 1 from start-up: Envoy sets it as it initialises, before LIVE.
	s.serverStats.live.Set(1)
	s.originalStart = s.startTime.Unix()
	s.drain = &drainManager{
		strategy: opts.DrainStrategy, drainTime: opts.DrainTime, healthCheckFailed: &s.healthCheckFailed,
		post: func(f func()) { s.onDispatcher(f) },
	}
	if opts.Mode == "validate" {
		return s.validate()
	}
	code := s.run()
	s.closeLogs()
	return code
}

func (s *Server) version() uint64 {
	if s.opts.FakeHotRestartVersion != 0 {
		return s.opts.FakeHotRestartVersion
	}
	return hotrestart.Version
}

func (s *Server) hotRestartVersion() string {
	if s.opts.DisableHotRestart {
		return "disabled"
	}
	return hotrestart.VersionString(s.version())
}

// serverState is Envoy's Utility::serverState, as /ready, /server_info and
// server.state report it: INITIALIZING until the init manager is done, then
// DRAINING while the health check is failed, else LIVE. A parent draining
// for a hot restart stays LIVE.
func (s *Server) serverState() string {
	switch {
	case s.state.Load() != stateLive:
		return "INITIALIZING"
	case s.healthCheckFailed.Load():
		return "DRAINING"
	}
	return "LIVE"
}

// stateCodes are Envoy's ServerInfo.State values, as server.state counts
// them.
var stateCodes = map[string]uint64{"LIVE": 0, "DRAINING": 1, "PRE_INITIALIZING": 2, "INITIALIZING": 3}

// failHealthcheck is Envoy's InstanceImpl::failHealthcheck: the state
// behind /healthcheck/fail and /healthcheck/ok, and server.live with it.
func (s *Server) failHealthcheck(fail bool) {
	s.healthCheckFailed.Store(fail)
	live := uint64(1)
	if fail {
		live = 0
	}
	s.serverStats.live.Set(live)
}

// shmLogEnv names a file each epoch appends its base id to, a line each
// (fake-only, fakeenvoytest.RegionLogEnv): Envoy never removes its shared
// memory region, and a dynamic base id is otherwise known only from a
// --base-id-path file that a later run overwrites, so test harnesses use
// this to remove every region their scenarios made.
const shmLogEnv = "FAKEENVOY_SHM_LOG"

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

// dispatch is the main loop: signals, requests from the child epoch,
// timers. It returns the exit code.
func (s *Server) dispatch() int {
	// Envoy's RunHelper (InstanceImpl::run): the signals are caught from
	// here, before LIVE, the workers-started callback and INITIALIZING
	// cleared; until here they had their default action (sigdefault). When
	// the loop is done, RunHelper goes and the default action is back.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, sigdefault.Handled...)
	defer sigdefault.Restore()
	defer signal.Stop(sigs)
	if s.hr != nil {
		go s.hr.Parent.Serve(parentHandler{s})
	}

	var ready, workersStarted, parentShutdown <-chan time.Time
	if s.opts.FakeReadyDelay > 0 {
		ready = time.After(s.opts.FakeReadyDelay)
	} else {
		workersStarted = s.goLive()
	}
	s.log.Info("main", "starting main dispatch loop")
	for {
		var statsFlush <-chan time.Time
		if s.statsFlush != nil {
			statsFlush = s.statsFlush.C
		}
		select {
		case sig := <-sigs:
			if s.onSignal(sig) {
				return s.shutdown()
			}
		case f := <-s.events:
			f()
		case <-ready:
			ready = nil
			workersStarted = s.goLive()
		case <-workersStarted:
			workersStarted = nil
			if err := s.onWorkersStarted(); err != nil {
				return s.fatal(err)
			}
			if s.hr != nil {
				// Armed by every epoch, as Envoy's drain manager does; a
				// no-op without a parent but for the log line.
				parentShutdown = time.After(s.opts.ParentShutdownTime)
			}
		case <-statsFlush:
			if err := s.flushStats(); err != nil {
				return s.fatal(err)
			}
		case <-parentShutdown:
			parentShutdown = nil
			s.log.Info("main", "shutting down parent after drain")
			if err := s.terminateParent(); err != nil {
				return s.fatal(err)
			}
		case <-s.quit:
			return s.shutdown()
		}
	}
}

// goLive is the init manager completing: /ready and /server_info say LIVE
// and the workers start. The workers-started callback, which drains the
// parent and clears INITIALIZING, comes --fake-live-gap later: in Envoy it
// waits for the worker threads, so "LIVE but still INITIALIZING" is real.
func (s *Server) goLive() <-chan time.Time {
	s.log.Info("config", "all dependencies initialized. starting workers")
	for _, l := range s.listeners {
		l.serve(newHTTPServer)
	}
	// The state file is written first, so whoever sees LIVE on /ready
	// finds it; like /ready, it may say LIVE while INITIALIZING is set.
	if err := s.writeState("LIVE"); err != nil {
		s.log.Error("main", "cannot write state file: %v", err)
	}
	s.state.Store(stateLive)
	return time.After(s.opts.FakeLiveGap)
}

// onWorkersStarted is Envoy's workers-started callback: update the server
// stats (a stats exchange with the parent), tell the parent to drain, clear
// INITIALIZING. Then fakeenvoy says so in a line of its own.
func (s *Server) onWorkersStarted() error {
	if err := s.updateServerStats(); err != nil {
		return err
	}
	if s.hr != nil {
		if err := s.hr.Child.DrainParentListeners(); err != nil {
			return err
		}
		s.hr.Shm.ClearInitializing()
	}
	s.log.Info("fakeenvoy", "workers started: parent told to drain, INITIALIZING cleared")
	return nil
}

// flushStats is Envoy's stats flush, at the flush timer or, with
// stats_flush_on_admin, at each /stats request: the server stats are
// updated (a stats exchange with the parent until it is terminated), then
// the counters are latched, as Envoy's snapshot for its sinks does, and
// the timer, if any, is re-armed.
func (s *Server) flushStats() error {
	if err := s.updateServerStats(); err != nil {
		return err
	}
	s.stats.Latch()
	if s.statsFlush != nil {
		s.statsFlush.Reset(s.statsFlushInterval())
	}
	return nil
}

// onSignal handles one signal; it returns true when the server should shut down.
func (s *Server) onSignal(sig os.Signal) bool {
	switch sig {
	case syscall.SIGTERM:
		s.log.Warn("main", "caught ENVOY_SIGTERM")
		if s.opts.FakeIgnoreSIGTERM {
			s.log.Warn("main", "ignoring SIGTERM (--fake-ignore-sigterm)")
			return false
		}
	case syscall.SIGINT:
		s.log.Warn("main", "caught SIGINT")
	case syscall.SIGUSR1:
		s.log.Info("main", "caught SIGUSR1. Reopening access logs.")
		s.reopenLogs()
		return false
	case syscall.SIGHUP:
		s.log.Warn("main", "caught and eating SIGHUP. See documentation for how to hot restart.")
		return false
	}
	return true
}

// shutdown is Envoy's InstanceImpl::shutdown then terminate: the parent,
// if not yet terminated, is told to exit (a dead one is fatal, as every
// message to it is), the loop exits, and everything is closed.
func (s *Server) shutdown() int {
	s.log.Info("main", "shutting down server instance")
	if s.hr != nil {
		if err := s.terminateParent(); err != nil {
			return s.fatal(err)
		}
	}
	close(s.done)
	s.log.Info("main", "main dispatch loop exited")
	s.stop()
	s.log.Info("main", "exiting")
	return 0
}

// stop closes everything. Open connections are closed, not waited on:
// Envoy's workers exit with the process.
func (s *Server) stop() {
	if s.statsFlush != nil {
		s.statsFlush.Stop()
	}
	s.drain.stop()
	if s.admin != nil {
		_ = s.admin.http.Close()
	}
	for _, l := range s.listeners {
		l.close()
	}
	if s.hr != nil {
		s.hr.Close()
	}
}

// onDispatcher runs f on the dispatcher and waits; false if it has exited.
func (s *Server) onDispatcher(f func()) bool {
	finished := make(chan struct{})
	select {
	case s.events <- func() { f(); close(finished) }:
		<-finished
		return true
	case <-s.done:
		return false
	}
}

// parentHandler answers the child epoch on the dispatcher goroutine.
type parentHandler struct{ s *Server }

func (h parentHandler) ShutdownAdmin() int64 {
	s := h.s
	s.onDispatcher(func() {
		s.log.Warn("main", "shutting down admin due to child startup")
		if s.statsFlush != nil {
			s.statsFlush.Stop()
			s.statsFlush = nil
		}
		if s.admin != nil {
			// Only the listening socket, as Envoy's closeSocket: open
			// admin connections stay with this epoch and are answered
			// until it exits.
			_ = s.admin.ln.Close()
		}
		s.log.Warn("main", "terminating parent process")
		if err := s.terminateParent(); err != nil {
			// A grandparent that died: fatal here, as in Envoy.
			s.fatal(err)
		}
	})
	return s.originalStart
}

func (h parentHandler) ListenSocket(req hotrestart.ListenSocketRequest) int {
	fd := -1
	h.s.onDispatcher(func() { fd = h.s.listenSocketForChild(req) })
	return fd
}

func (h parentHandler) DrainListeners() {
	s := h.s
	s.onDispatcher(func() {
		// Drain first, so a client that saw the log line sees the drain.
		s.drain.startDrainSequence(drainAll, func() {})
		s.log.Info("main", "closing and draining listeners")
		s.stopListeners(drainAll)
	})
}

func (h parentHandler) Terminate() {
	// Envoy signals itself, so the exit takes exactly the SIGTERM path.
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
}

func (h parentHandler) Stats() (gauges, counterDeltas map[string]uint64, connections uint64) {
	h.s.onDispatcher(func() {
		gauges, counterDeltas = h.s.stats.Export()
		connections = uint64(max(h.s.connections.Load(), 0))
	})
	return gauges, counterDeltas, connections
}

// State is the --fake-state-path document.
type State struct {
	PID               int               `json:"pid"`
	Epoch             uint32            `json:"epoch"`
	BaseID            uint32            `json:"base_id"`
	State             string            `json:"state"`
	HotRestartVersion string            `json:"hot_restart_version"`
	AdminAddress      string            `json:"admin_address"`
	Listeners         map[string]string `json:"listeners"`
}

func (s *Server) writeState(state string) error {
	if s.opts.FakeStatePath == "" {
		return nil
	}
	st := State{
		PID: os.Getpid(), Epoch: s.opts.RestartEpoch, BaseID: s.baseID, State: state,
		HotRestartVersion: s.hotRestartVersion(), Listeners: map[string]string{},
	}
	if s.admin != nil {
		st.AdminAddress = s.admin.ln.Addr().String()
	}
	for _, l := range s.listeners {
		st.Listeners[l.cfg.Name] = l.sockets[0].local()
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.opts.FakeStatePath, append(b, '\n'))
}
