// Package config reads an Envoy v3 bootstrap through Envoy's own API types
// (github.com/envoyproxy/go-control-plane/envoy): YAML → JSON → protojson
// with the supported extensions registered, then the generated constraint
// validation, the way Envoy's MessageUtil loads and validates it. It then
// derives what fakeenvoy serves: admin, listeners with their addresses, and
// each HTTP connection manager's routes, health check and access logs.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	healthcheckv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/health_check/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// Config is a loaded, validated bootstrap and what fakeenvoy serves of it.
type Config struct {
	Bootstrap *bootstrapv3.Bootstrap
	Admin     *Address // nil: no admin listener
	Listeners []Listener
	Clusters  map[string]Cluster
}

// Address is where a listener binds: an IP socket address (Port 0 asks the
// kernel) or a unix domain socket path (Envoy's pipe; a leading '@' is
// Linux's abstract namespace).
type Address struct {
	IP   netip.Addr
	Port uint16
	Path string      // set for a pipe
	Mode os.FileMode // a pipe's mode; 0 leaves the umask's
}

// Pipe says the address is a unix domain socket.
func (a Address) Pipe() bool { return a.Path != "" }

// Network is the Go network name to bind a.
func (a Address) Network() string {
	if a.Pipe() {
		return "unix"
	}
	return "tcp"
}

// String renders the address as Envoy's Address::asString does, which is
// also the key a child uses to ask its parent for the listen socket:
// ip:port (IPv6 bracketed) or the pipe's path.
func (a Address) String() string {
	if a.Pipe() {
		return a.Path
	}
	return netip.AddrPortFrom(a.IP, a.Port).String()
}

// Listener is one static listener.
type Listener struct {
	Name      string
	Addresses []Address // the address, then the additional_addresses in order
	ReusePort bool      // SO_REUSEPORT: enable_reuse_port, default true on Linux
	// Inbound: traffic_direction INBOUND, the listeners
	// /drain_listeners?inboundonly stops and drains.
	Inbound bool
	// DrainModifyOnly: drain_type MODIFY_ONLY, a listener whose connections
	// are not drain-closed while the server fails its health check (the
	// default, DEFAULT, closes them).
	DrainModifyOnly bool
	// HTTP is the listener's HTTP connection manager; nil for a listener
	// whose network filter fakeenvoy parses but does not serve (its
	// connections are accepted and closed).
	HTTP *HTTP
}

// HTTP is the served part of an HTTP connection manager.
type HTTP struct {
	StatPrefix   string
	AcceptHTTP10 bool // http_protocol_options.accept_http_10: else HTTP/1.0 gets 426
	// IgnoreHostPort: virtual hosts are chosen by the Host without its port
	// (route_config.ignore_port_in_host_matching or strip_any_host_port).
	IgnoreHostPort bool
	AccessLogPaths []string     // file access logs, in order
	HealthCheck    *HealthCheck // the health check filter, if any
	VirtualHosts   []*routev3.VirtualHost
}

// HealthCheck is the health check HTTP filter.
type HealthCheck struct {
	PassThrough bool
	Headers     []*routev3.HeaderMatcher
}

// Cluster is a static cluster's endpoints, host:port each.
type Cluster struct {
	Endpoints []string
}

// Type URLs of the configs fakeenvoy serves.
var (
	hcmType         = typeURL(&hcmv3.HttpConnectionManager{})
	fileLogType     = typeURL(&filev3.FileAccessLog{})
	healthCheckType = typeURL(&healthcheckv3.HealthCheck{})
)

func typeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// filterFactories names the filters registered in extensions.go by their
// typed configs' type URLs: each factory's name and whether it is terminal
// (it must be the last filter of its chain), as Envoy's factories say.
var filterFactories = map[string]struct {
	name     string
	terminal bool
}{
	hcmType: {"envoy.filters.network.http_connection_manager", true},
	"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":     {"envoy.filters.network.tcp_proxy", true},
	"type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy": {"envoy.filters.network.redis_proxy", true},
	"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router":             {"envoy.filters.http.router", true},
	healthCheckType: {"envoy.filters.http.health_check", false},
}

// checkTerminalFilters is Envoy's Config::Utility::validateTerminalFilters
// over one chain: a terminal filter anywhere but last, or a non-terminal
// one last, is refused. names and typeURLs are the chain's filters.
func checkTerminalFilters(chain string, names, typeURLs []string) error {
	for i, url := range typeURLs {
		f, known := filterFactories[url]
		if !known {
			continue // rejected as an unknown @type before this
		}
		last := i == len(typeURLs)-1
		switch {
		case f.terminal && !last:
			return fmt.Errorf("Error: terminal filter named %s of type %s must be the last filter in a %s filter chain.", names[i], f.name, chain)
		case !f.terminal && last:
			return fmt.Errorf("Error: non-terminal filter named %s of type %s is the last filter in a %s filter chain.", names[i], f.name, chain)
		}
	}
	return nil
}

// Load reads and validates the bootstrap at path.
func Load(path string) (*Config, error) {
	if path == "" {
		return nil, errors.New("At least one of --config-path or --config-yaml or Options::configProto() should be non-empty")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("unable to read file: %s", path)
	}
	// As Envoy's MessageUtil::loadFromFile: YAML by the extension, JSON
	// otherwise.
	if ext := strings.ToLower(filepath.Ext(path)); ext == ".yaml" || ext == ".yml" {
		return Parse(b)
	}
	return ParseJSON(b)
}

// Parse validates a YAML bootstrap document.
func Parse(doc []byte) (*Config, error) {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("Unable to convert YAML as JSON: %v", err)
	}
	if t := bytes.TrimSpace(j); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("Unable to convert YAML as JSON: %s", strings.TrimSpace(string(doc)))
	}
	return ParseJSON(j)
}

// ParseJSON validates a JSON bootstrap document.
func ParseJSON(doc []byte) (*Config, error) {
	b := &bootstrapv3.Bootstrap{}
	if err := unmarshal(doc, b); err != nil {
		return nil, err
	}
	if err := validate(b); err != nil {
		return nil, err
	}
	return build(b)
}
