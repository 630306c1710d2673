// Package server is fakeenvoy's process: it wires options, config, hot
// restart, listeners, admin and signals together the way Envoy's server
// does, and logs Envoy's messages on the way.
package server

import (
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
