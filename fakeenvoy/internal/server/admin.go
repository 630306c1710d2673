package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// admin serves the subset of Envoy's admin endpoints fakeenvoy offers.
type admin struct {
	ln   net.Listener
	http *http.Server
}

func (s *Server) startAdmin(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintln(w, "invalid path. admin commands are:")
	})
	mux.HandleFunc("/ready", s.handleReady)
	mux.HandleFunc("/server_info", s.handleServerInfo)
	mux.HandleFunc("/hot_restart_version", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, s.hotRestartVersion())
	})
	mux.HandleFunc("/listeners", s.handleListeners)
	mux.HandleFunc("/stats", s.handleStats)
	// The endpoints that change the server's state take POST only.
	mux.HandleFunc("/quitquitquit", s.mutating(s.handleQuit))
	mux.HandleFunc("/healthcheck/fail", s.mutating(s.handleHealthcheck(true)))
	mux.HandleFunc("/healthcheck/ok", s.mutating(s.handleHealthcheck(false)))
	mux.HandleFunc("/drain_listeners", s.mutating(s.handleDrainListeners))
	mux.HandleFunc("/reopen_logs", s.mutating(s.handleReopenLogs))
	s.admin = &admin{ln: ln, http: &http.Server{Handler: envoyHTTP1(mux, adminDrain(s.drain)), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.admin.http.Serve(ln) }()
}

// upgradeRequired is what Envoy's HTTP/1 codec answers a request below
// HTTP/1.1 unless the connection manager sets accept_http_10 (off by
// default; the admin has no way to turn it on); the connection is then
// closed.
const upgradeRequired = "HTTP/1.1 426 Upgrade Required\r\ncontent-length: 16\r\ncontent-type: text/plain\r\nserver: envoy\r\nconnection: close\r\n\r\nUpgrade Required"

// refuseBelowHTTP11 answers HTTP/1.0 (and older) with 426 Upgrade Required
// and closes the connection, as Envoy's HTTP/1 codec does.
func refuseBelowHTTP11(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoAtLeast(1, 1) {
			h.ServeHTTP(w, r)
			return
		}
		if hj, ok := w.(http.Hijacker); ok {
			if conn, buf, err := hj.Hijack(); err == nil {
				_, _ = buf.WriteString(upgradeRequired)
				_ = buf.Flush()
				_ = conn.Close()
				return
			}
		}
		w.Header().Set("connection", "close")
		http.Error(w, "Upgrade Required", http.StatusUpgradeRequired)
	})
}

// envoyHTTP1 makes net/http behave as Envoy's admin does where a client can
// tell: HTTP/1.0 gets 426, HTTP/1.1 replies are chunked (no
// content-length) and carry the admin's headers, and a drain closes
// connections as drain says.
func envoyHTTP1(h http.Handler, drain drainDecision) http.Handler {
	return refuseBelowHTTP11(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&chunkedWriter{ResponseWriter: w, drain: drain}, r)
	}))
}

// chunkedWriter flushes right after the headers, so net/http cannot add a
// content-length and the body goes out chunked, as Envoy's admin sends it.
type chunkedWriter struct {
	http.ResponseWriter
	drain       drainDecision
	wroteHeader bool
}

func (c *chunkedWriter) WriteHeader(code int) {
	if c.wroteHeader {
		return
	}
	c.wroteHeader = true
	h := c.ResponseWriter.Header()
	h.Set("Server", "envoy")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	// Envoy's Utility::populateFallbackResponseHeaders.
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "text/plain; charset=UTF-8")
	}
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-cache, max-age=0")
	}
	h.Add("X-Content-Type-Options", "nosniff")
	if c.drain.drainClose() {
		h.Set("Connection", "close")
	}
	lowercaseNames(h)
	c.ResponseWriter.WriteHeader(code)
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// framingHeaders are the headers net/http reads back from the map by their
// canonical names to frame the reply (and writes itself): they keep Go's
// case.
var framingHeaders = map[string]bool{"Connection": true, "Content-Length": true, "Transfer-Encoding": true}

// lowercaseNames renames the reply's headers to lowercase, as Envoy's
// codec sends them: net/http writes a map key as it is. The canonical
// Content-Type and Date are left with no value, which tells net/http not
// to add its own.
func lowercaseNames(h http.Header) {
	for name, values := range h {
		lower := strings.ToLower(name)
		if lower == name || framingHeaders[name] || values == nil {
			continue
		}
		h[lower] = append(h[lower], values...)
		delete(h, name)
	}
	h["Content-Type"] = nil
	h["Date"] = nil
}

func (c *chunkedWriter) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return c.ResponseWriter.Write(b)
}

// Flush passes a handler's flush on: /quitquitquit flushes its answer
// before the admin closes, and without this the body could be lost.
func (c *chunkedWriter) Flush() {
	c.WriteHeader(http.StatusOK)
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	st := s.serverState()
	if st != "LIVE" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, st)
}

func seconds(d time.Duration) string {
	return strings.TrimSuffix(fmt.Sprintf("%.3f", d.Seconds()), ".000") + "s"
}

func (s *Server) handleServerInfo(w http.ResponseWriter, _ *http.Request) {
	o := s.opts
	mode := map[string]string{"serve": "Serve", "validate": "Validate", "init_only": "InitOnly"}[o.Mode]
	info := map[string]any{
		"version":              "fakeenvoy/1.0.0/Clean/RELEASE/BoringSSL",
		"state":                s.serverState(),
		"hot_restart_version":  s.hotRestartVersion(),
		"uptime_current_epoch": seconds(time.Since(s.startTime).Truncate(time.Second)),
		"uptime_all_epochs":    fmt.Sprintf("%ds", time.Now().Unix()-s.originalStart),
		"pid":                  os.Getpid(),
		"node": map[string]any{
			"id": o.ServiceNode, "cluster": o.ServiceCluster,
			"locality": map[string]string{"zone": o.ServiceZone},
		},
		"command_line_options": map[string]any{
			"base_id":                       s.baseID,
			"use_dynamic_base_id":           o.UseDynamicBaseID,
			"base_id_path":                  o.BaseIDPath,
			"skip_hot_restart_on_no_parent": o.SkipHotRestartOnNoParent,
			"concurrency":                   o.Concurrency,
			"file_flush_interval":           seconds(o.FileFlushInterval),
			"config_path":                   o.ConfigPath,
			"log_level":                     o.LogLevel,
			"log_path":                      o.LogPath,
			"service_cluster":               o.ServiceCluster,
			"service_node":                  o.ServiceNode,
			"service_zone":                  o.ServiceZone,
			"drain_time":                    seconds(o.DrainTime),
			"drain_strategy":                map[string]string{"gradual": "Gradual", "immediate": "Immediate"}[o.DrainStrategy],
			"parent_shutdown_time":          seconds(o.ParentShutdownTime),
			"mode":                          mode,
			"disable_hot_restart":           o.DisableHotRestart,
			"restart_epoch":                 o.RestartEpoch,
			"socket_path":                   o.SocketPath,
			"socket_mode":                   o.SocketMode,
		},
	}
	w.Header().Set("content-type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	_ = enc.Encode(info)
}

// handleListeners is /listeners: Envoy's admin Listeners message as JSON
// (snake_case field names, pretty-printed) with ?format=json, else one
// "name::address" line per listener.
func (s *Server) handleListeners(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("format") == "json" {
		b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true, Indent: " "}.Marshal(s.listenerStatuses())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("content-type", "application/json")
		_, _ = w.Write(append(b, '\n'))
		return
	}
	for _, l := range s.listeners {
		fmt.Fprintf(w, "%s::%s\n", l.cfg.Name, l.sockets[0].local())
	}
}

// listenerStatuses is what Envoy's admin reports for each listener: its
// name, the local address it is bound to (the kernel's port for port 0)
// and its additional addresses.
func (s *Server) listenerStatuses() *adminv3.Listeners {
	out := &adminv3.Listeners{}
	for _, l := range s.listeners {
		st := &adminv3.ListenerStatus{Name: l.cfg.Name}
		for i, group := range l.socketsByAddress() {
			a := protoAddress(group[0].ln.Addr())
			if i == 0 {
				st.LocalAddress = a
			} else {
				st.AdditionalLocalAddresses = append(st.AdditionalLocalAddresses, a)
			}
		}
		out.ListenerStatuses = append(out.ListenerStatuses, st)
	}
	return out
}

func protoAddress(a net.Addr) *corev3.Address {
	switch a := a.(type) {
	case *net.TCPAddr:
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: a.IP.String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(a.Port)},
		}}}
	case *net.UnixAddr:
		return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: a.Name}}}
	}
	return nil
}

// handleStats answers /stats with the epoch's counters and gauges (as of
// the last stats flush, for the server gauges), sorted as Envoy sorts
// them; ?filter= keeps the names the regular expression (RE2, as Envoy's
// default engine) matches. With stats_flush_on_admin each request flushes
// the stats first (StatsHandler), and so exchanges stats with a parent.
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	if s.statsConfig.FlushOnAdmin {
		s.onDispatcher(func() {
			if err := s.flushStats(); err != nil {
				s.fatal(err)
			}
		})
	}
	var filter *regexp.Regexp
	if f := r.URL.Query().Get("filter"); f != "" {
		var err error
		if filter, err = regexp.Compile(f); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "Invalid re2 regex")
			return
		}
	}
	for _, st := range s.stats.All() {
		if filter == nil || filter.MatchString(st.Name) {
			fmt.Fprintf(w, "%s: %d\n", st.Name, st.Value)
		}
	}
}

// mutating guards an endpoint that changes the server's state: Envoy's
// admin runs it for POST only, and answers any other method 405, logging
// the refusal (AdminImpl::makeRequest).
func (s *Server) mutating(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			s.log.Error("admin", "admin path \"%s\" mutates state, method=%s rather than POST", r.URL.Path, r.Method)
			w.WriteHeader(http.StatusMethodNotAllowed)
			fmt.Fprintf(w, "Method %s not allowed, POST required.", r.Method)
			return
		}
		h(w, r)
	}
}

// adminQuery is a request's parameters as Envoy's admin reads them: the
// URL's query or, when it has none, a form-encoded body
// (AdminFilter::queryParams). A parameter given without a value is there.
func adminQuery(r *http.Request) url.Values {
	q := r.URL.Query()
	if len(q) > 0 || r.Header.Get("content-type") != "application/x-www-form-urlencoded" {
		return q
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return q
	}
	form, _ := url.ParseQuery(string(body))
	return form
}

// handleHealthcheck is /healthcheck/fail (fail) and /healthcheck/ok
// (Envoy's ServerCmdHandler).
func (s *Server) handleHealthcheck(fail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		s.onDispatcher(func() { s.failHealthcheck(fail) })
		fmt.Fprint(w, "OK\n")
	}
}

// handleDrainListeners is /drain_listeners with Envoy's parameters
// (ListenersHandler::handlerDrainListeners): inboundonly, graceful and
// skip_exit; see Server.drainListeners.
func (s *Server) handleDrainListeners(w http.ResponseWriter, r *http.Request) {
	q := adminQuery(r)
	direction := drainAll
	if q.Has("inboundonly") {
		direction = drainInboundOnly
	}
	s.onDispatcher(func() { s.drainListeners(direction, q.Has("graceful"), q.Has("skip_exit")) })
	fmt.Fprint(w, "OK\n")
}

// handleReopenLogs is /reopen_logs: what SIGUSR1 does, without its log
// line (Envoy's LogsHandler::handlerReopenLogs).
func (s *Server) handleReopenLogs(w http.ResponseWriter, _ *http.Request) {
	s.onDispatcher(s.reopenLogs)
	fmt.Fprint(w, "OK\n")
}

// handleQuit is /quitquitquit.
func (s *Server) handleQuit(w http.ResponseWriter, _ *http.Request) {
	// The whole answer leaves before the quit: the dispatcher's exit closes
	// the admin and its connections.
	w.Header().Set("content-length", "3")
	fmt.Fprintln(w, "OK")
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.quitOnce.Do(func() { close(s.quit) })
}
