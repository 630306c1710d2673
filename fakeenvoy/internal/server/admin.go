package server

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
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
	mux.HandleFunc("/ready", s.handleReady)
	mux.HandleFunc("/server_info", s.handleServerInfo)
	mux.HandleFunc("/hot_restart_version", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, s.hotRestartVersion())
	})
	mux.HandleFunc("/listeners", s.handleListeners)
	mux.HandleFunc("/stats", s.handleStats)
	mux.HandleFunc("/quitquitquit", s.handleQuit)
	s.admin = &admin{ln: ln, http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.admin.http.Serve(ln) }()
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	st := s.stateName()
	w.Header().Set("content-type", "text/plain")
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
		"state":                s.stateName(),
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
	w.Header().Set("content-type", "text/plain")
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
		for i, sock := range l.sockets {
			a := protoAddress(sock.ln.Addr())
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

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	state := map[string]int{"LIVE": 0, "DRAINING": 1, "PRE_INITIALIZING": 2, "INITIALIZING": 3}[s.stateName()]
	live := 0
	if state == 0 {
		live = 1
	}
	w.Header().Set("content-type", "text/plain")
	fmt.Fprintf(w, "server.hot_restart_epoch: %d\nserver.hot_restart_generation: %d\nserver.live: %d\nserver.state: %d\n",
		s.opts.RestartEpoch, s.opts.RestartEpoch+1, live, state)
}

func (s *Server) handleQuit(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("content-type", "text/plain")
		w.WriteHeader(http.StatusMethodNotAllowed)
		fmt.Fprintln(w, "This endpoint requires POST.")
		return
	}
	fmt.Fprintln(w, "OK")
	s.quitOnce.Do(func() { close(s.quit) })
}
