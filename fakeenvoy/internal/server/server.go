// Package server is fakeenvoy's process: it wires options, config, hot
// restart, listeners, admin and signals together the way Envoy's server
// does, and logs Envoy's messages on the way.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/config"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/envoylog"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/hotrestart"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/options"
	"github.com/envoy-restarter/restarter/internal/atomicfile"
)

// States as /server_info names them.
const (
	stateInitializing int32 = iota
	stateLive
	stateDraining
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
	draining      atomic.Bool
	admin         *admin
	listeners     []*listener
	accessLogs    map[string]*accessLog
	events        chan func()
	done          chan struct{}
	quit          chan struct{}
	quitOnce      sync.Once
}

// Main runs fakeenvoy with args (without the program name) and returns the
// exit code. execNanos is CLOCK_MONOTONIC as read first thing in main.
func Main(args []string, execNanos int64) int {
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
	log, err := envoylog.New(opts.LogPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: cannot open log path %s: %v\n", opts.LogPath, err)
		return 1
	}
	defer log.Close()
	s := &Server{
		opts: opts, log: log, startTime: time.Now(), baseID: opts.BaseID,
		accessLogs: map[string]*accessLog{},
		events:     make(chan func()), done: make(chan struct{}), quit: make(chan struct{}),
	}
	s.originalStart = s.startTime.Unix()
	if opts.Mode == "validate" {
		return s.validate()
	}
	return s.run()
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

func (s *Server) stateName() string {
	switch s.state.Load() {
	case stateLive:
		return "LIVE"
	case stateDraining:
		return "DRAINING"
	}
	return "INITIALIZING"
}

// validate is --mode validate: check the config, touch no hot restart state.
func (s *Server) validate() int {
	if _, err := config.Load(s.opts.ConfigPath); err != nil {
		s.log.Critical("main", "error initializing configuration '%s': %v", s.opts.ConfigPath, err)
		return 1
	}
	s.log.Info("main", "configuration '%s' OK", s.opts.ConfigPath)
	return 0
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
		SkipHotRestartOnNoParent: o.SkipHotRestartOnNoParent, Version: s.version(),
		RetryDelay: o.FakeHotRestartRetryDelay,
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
	}
	s.log.Info("main", "initializing epoch %d (base id=%d, hot restart version=%s).", o.RestartEpoch, s.baseID, s.hotRestartVersion())
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		// INITIALIZING stays set, as it does when Envoy dies here.
		s.log.Critical("main", "error initializing configuration '%s': %v", o.ConfigPath, err)
		return 1
	}
	s.cfg = cfg
	if o.Mode == "init_only" {
		if s.hr != nil {
			s.hr.Shm.ClearInitializing()
			s.hr.Close()
		}
		return 0
	}
	for _, l := range cfg.Listeners {
		for _, p := range l.HTTP.AccessLogPathList() {
			if s.accessLogs[p] != nil {
				continue
			}
			a, err := openAccessLog(p)
			if err != nil {
				s.log.Critical("main", "error initializing configuration '%s': %v", o.ConfigPath, err)
				return 1
			}
			s.accessLogs[p] = a
		}
	}
	if err := s.initialize(); err != nil {
		return s.fatal(err)
	}
	return s.dispatch()
}

// initialize takes over from the parent (admin first, then each listen
// socket) and binds whatever the parent could not hand over.
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
	if a := s.cfg.Admin; a != nil {
		ln, err := net.Listen("tcp", a.String())
		if err != nil {
			return fmt.Errorf("cannot bind '%s': %w", a, errors.Unwrap(errors.Unwrap(err)))
		}
		s.startAdmin(ln)
		s.log.Info("main", "admin address: %s", ln.Addr())
	}
	for _, c := range s.cfg.Listeners {
		l, err := s.newListener(c)
		if err != nil {
			return err
		}
		s.listeners = append(s.listeners, l)
	}
	return nil
}

// newListener builds one listener, each of its sockets asked from the
// parent by address (Envoy's duplicateParentListenSocket) and bound here
// when the parent has none.
func (s *Server) newListener(c config.Listener) (*listener, error) {
	l := &listener{cfg: c, epoch: s.opts.RestartEpoch, pid: os.Getpid(), draining: &s.draining}
	if c.HTTP != nil {
		rt := &router{l: l, http: c.HTTP, clusters: s.cfg.Clusters}
		for _, p := range c.HTTP.AccessLogPaths {
			rt.logs = append(rt.logs, s.accessLogs[p])
		}
		l.router = rt
	}
	for _, a := range c.Addresses {
		sock := &socket{addr: a}
		if s.hr != nil {
			byName := s.opts.FakeReusePortZero && !a.Pipe() && a.Port == 0
			fd, err := s.hr.Child.DuplicateParentListenSocket(a.String(), c.Name, byName)
			if err != nil {
				l.stopAccepting()
				return nil, err
			}
			if fd >= 0 {
				if sock.ln, err = listenerFromFD(fd, c.Name); err != nil {
					l.stopAccepting()
					return nil, fmt.Errorf("listener '%s': socket from parent: %w", c.Name, err)
				}
				sock.inherited = true
			}
		}
		if sock.ln == nil {
			ln, err := bind(a, c.ReusePort)
			if err != nil {
				l.stopAccepting()
				return nil, fmt.Errorf("error adding listener '%s': %w", a, bindError(a, err))
			}
			sock.ln = ln
		}
		l.sockets = append(l.sockets, sock)
		s.log.Info("config", "listener '%s' on %s (%s)", c.Name, sock.local(), map[bool]string{true: "from parent", false: "bound"}[sock.inherited])
	}
	return l, nil
}

// dispatch is the main loop: signals, requests from the child epoch,
// timers. It returns the exit code.
func (s *Server) dispatch() int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if s.hr != nil {
		go s.hr.Parent.Serve(parentHandler{s})
	}

	var ready, parentShutdown <-chan time.Time
	if s.opts.FakeReadyDelay > 0 {
		ready = time.After(s.opts.FakeReadyDelay)
	} else if !s.startWorkers(&parentShutdown) {
		return 1
	}
	s.log.Info("main", "starting main dispatch loop")
loop:
	for {
		select {
		case sig := <-sigs:
			if s.onSignal(sig) {
				break loop
			}
		case f := <-s.events:
			f()
		case <-ready:
			ready = nil
			if !s.startWorkers(&parentShutdown) {
				return 1
			}
		case <-parentShutdown:
			parentShutdown = nil
			if err := s.hr.Child.TerminateParent(); err != nil {
				return s.fatal(err)
			}
		case <-s.quit:
			s.log.Info("main", "shutting down server instance")
			break loop
		}
	}
	close(s.done)
	if s.hr != nil {
		_ = s.hr.Child.TerminateParentAtExit()
	}
	s.log.Info("main", "main dispatch loop exited")
	s.stop()
	s.log.Info("main", "exiting")
	return 0
}

// startWorkers is the moment an epoch becomes LIVE: accept, tell the parent
// to drain, clear INITIALIZING, and arm the parent shutdown timer.
func (s *Server) startWorkers(parentShutdown *<-chan time.Time) bool {
	s.log.Info("config", "all dependencies initialized. starting workers")
	for _, l := range s.listeners {
		l.serve(func(l *listener) httpServer {
			return &http.Server{Handler: l.router, ReadHeaderTimeout: 10 * time.Second}
		})
	}
	if s.hr != nil {
		hasParent := s.hr.Child.HasParent()
		if err := s.hr.Child.DrainParentListeners(); err != nil {
			s.fatal(err)
			return false
		}
		s.hr.Shm.ClearInitializing()
		if hasParent {
			*parentShutdown = time.After(s.opts.ParentShutdownTime)
		}
	}
	s.state.Store(stateLive)
	if err := s.writeState(); err != nil {
		s.log.Error("main", "cannot write state file: %v", err)
	}
	return true
}

// onSignal handles one signal; it returns true when the server should exit.
func (s *Server) onSignal(sig os.Signal) bool {
	switch sig {
	case syscall.SIGTERM:
		s.log.Warn("main", "caught SIGTERM")
		if s.opts.FakeIgnoreSIGTERM {
			s.log.Warn("main", "ignoring SIGTERM (--fake-ignore-sigterm)")
			return false
		}
	case syscall.SIGINT:
		s.log.Warn("main", "caught SIGINT")
	case syscall.SIGUSR1:
		s.log.Warn("main", "caught SIGUSR1. Reopening access logs.")
		for _, a := range s.accessLogs {
			if err := a.reopen(); err != nil {
				s.log.Error("main", "cannot reopen access log %s: %v", a.path, err)
			}
		}
		if err := s.log.Reopen(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		return false
	case syscall.SIGHUP:
		s.log.Warn("main", "caught and eating SIGHUP. See documentation for how to hot restart.")
		return false
	}
	s.log.Info("main", "shutting down server instance")
	return true
}

// stop closes everything: in-flight requests get a bounded time to finish.
func (s *Server) stop() {
	if s.admin != nil {
		_ = s.admin.http.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	for _, l := range s.listeners {
		l.close(ctx)
	}
	for _, a := range s.accessLogs {
		a.close()
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
		if s.admin != nil {
			_ = s.admin.http.Close()
		}
		s.log.Warn("main", "terminating parent process")
		if err := s.hr.Child.TerminateParent(); err != nil {
			s.log.Error("main", "%v", err)
		}
	})
	return s.originalStart
}

func (h parentHandler) ListenSocket(address, name string, byName bool) int {
	fd := -1
	h.s.onDispatcher(func() {
		if h.s.draining.Load() {
			return
		}
		for _, l := range h.s.listeners {
			for _, sock := range l.sockets {
				// Envoy compares the socket's actual address; with
				// --fake-reuse-port-zero a port-0 socket also matches
				// by listener name and configured address.
				if sock.local() == address || (byName && l.cfg.Name == name && sock.addr.String() == address) {
					fd = sock.dupFD()
					return
				}
			}
		}
	})
	return fd
}

func (h parentHandler) DrainListeners() {
	s := h.s
	s.onDispatcher(func() {
		s.log.Info("main", "closing and draining listeners")
		s.state.Store(stateDraining)
		s.draining.Store(true)
		for _, l := range s.listeners {
			l.stopAccepting()
		}
	})
}

func (h parentHandler) Terminate() {
	// Envoy signals itself, so the exit takes exactly the SIGTERM path.
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
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

func (s *Server) writeState() error {
	if s.opts.FakeStatePath == "" {
		return nil
	}
	st := State{
		PID: os.Getpid(), Epoch: s.opts.RestartEpoch, BaseID: s.baseID, State: s.stateName(),
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
