// Package config reads the subset of Envoy's v3 bootstrap YAML that
// fakeenvoy understands. Unknown fields are errors, as in Envoy.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// Well-known names fakeenvoy accepts; anything else is rejected.
const (
	HTTPConnectionManager     = "envoy.filters.network.http_connection_manager"
	HTTPConnectionManagerType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	FileAccessLogType         = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
	RouterType                = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
)

// Config is the validated bootstrap.
type Config struct {
	Admin     *Address // nil: no admin listener
	Listeners []Listener
}

// Address is an IP address and port; Port 0 asks the kernel for one.
type Address struct {
	IP   netip.Addr
	Port uint16
}

// String renders host:port, bracketing IPv6.
func (a Address) String() string { return netip.AddrPortFrom(a.IP, a.Port).String() }

// Listener is one static listener answering every request directly.
type Listener struct {
	Name           string
	Address        Address
	Status         int
	Body           string
	AccessLogPaths []string
}

// The yaml structs mirror Envoy's field names.
type bootstrap struct {
	Node            *node            `yaml:"node"`
	Admin           *admin           `yaml:"admin"`
	StaticResources *staticResources `yaml:"static_resources"`
}

type node struct {
	ID       string `yaml:"id"`
	Cluster  string `yaml:"cluster"`
	Locality *struct {
		Region  string `yaml:"region"`
		Zone    string `yaml:"zone"`
		SubZone string `yaml:"sub_zone"`
	} `yaml:"locality"`
}

type admin struct {
	AccessLogPath string   `yaml:"access_log_path"`
	Address       *address `yaml:"address"`
}

type address struct {
	SocketAddress *socketAddress `yaml:"socket_address"`
}

type socketAddress struct {
	Protocol  string `yaml:"protocol"`
	Address   string `yaml:"address"`
	PortValue *int64 `yaml:"port_value"`
}

type staticResources struct {
	Listeners []listener `yaml:"listeners"`
	Clusters  []any      `yaml:"clusters"`
}

type listener struct {
	Name         string        `yaml:"name"`
	Address      *address      `yaml:"address"`
	FilterChains []filterChain `yaml:"filter_chains"`
}

type filterChain struct {
	Filters []filter `yaml:"filters"`
}

type filter struct {
	Name        string   `yaml:"name"`
	TypedConfig *hcmYAML `yaml:"typed_config"`
}

type hcmYAML struct {
	Type        string        `yaml:"@type"`
	StatPrefix  string        `yaml:"stat_prefix"`
	CodecType   string        `yaml:"codec_type"`
	AccessLog   []accessLog   `yaml:"access_log"`
	RouteConfig *routeConfig  `yaml:"route_config"`
	HTTPFilters []typedFilter `yaml:"http_filters"`
}

type accessLog struct {
	Name        string `yaml:"name"`
	TypedConfig *struct {
		Type string `yaml:"@type"`
		Path string `yaml:"path"`
	} `yaml:"typed_config"`
}

type typedFilter struct {
	Name        string `yaml:"name"`
	TypedConfig *struct {
		Type string `yaml:"@type"`
	} `yaml:"typed_config"`
}

type routeConfig struct {
	Name         string        `yaml:"name"`
	VirtualHosts []virtualHost `yaml:"virtual_hosts"`
}

type virtualHost struct {
	Name    string   `yaml:"name"`
	Domains []string `yaml:"domains"`
	Routes  []route  `yaml:"routes"`
}

type route struct {
	Match *struct {
		Prefix string `yaml:"prefix"`
	} `yaml:"match"`
	DirectResponse *struct {
		Status *int64 `yaml:"status"`
		Body   *struct {
			InlineString string `yaml:"inline_string"`
		} `yaml:"body"`
	} `yaml:"direct_response"`
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
	return Parse(b)
}

// Parse validates a bootstrap document.
func Parse(doc []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	var b bootstrap
	if err := dec.Decode(&b); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("Unable to convert YAML as JSON: empty document")
		}
		return nil, fmt.Errorf("Protobuf message (type envoy.config.bootstrap.v3.Bootstrap reason INVALID_ARGUMENT:%v) has unknown fields or invalid values", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("Unable to convert YAML as JSON: more than one document")
	}
	c := &Config{}
	if b.Admin != nil && b.Admin.Address != nil {
		a, err := convertAddress(b.Admin.Address, "admin.address")
		if err != nil {
			return nil, err
		}
		c.Admin = &a
	}
	seen := map[string]bool{}
	if b.StaticResources != nil {
		if len(b.StaticResources.Clusters) > 0 {
			return nil, errors.New("static_resources.clusters: fakeenvoy has no upstreams; use direct_response")
		}
		for i, l := range b.StaticResources.Listeners {
			where := fmt.Sprintf("static_resources.listeners[%d]", i)
			if l.Name == "" {
				return nil, fmt.Errorf("%s.name: fakeenvoy requires every listener to be named", where)
			}
			if seen[l.Name] {
				return nil, fmt.Errorf("error adding listener named '%s': listener with same name already exists", l.Name)
			}
			seen[l.Name] = true
			conv, err := convertListener(l, where)
			if err != nil {
				return nil, err
			}
			c.Listeners = append(c.Listeners, conv)
		}
	}
	for i, a := range c.Listeners {
		for _, b := range c.Listeners[:i] {
			if a.Address.Port != 0 && a.Address == b.Address {
				return nil, fmt.Errorf("error adding listener '%s': listener '%s' has the same address", a.Name, b.Name)
			}
		}
	}
	return c, nil
}

func convertAddress(a *address, where string) (Address, error) {
	if a == nil || a.SocketAddress == nil {
		return Address{}, fmt.Errorf("%s: socket_address is required", where)
	}
	sa := a.SocketAddress
	if sa.Protocol != "" && sa.Protocol != "TCP" {
		return Address{}, fmt.Errorf("%s.socket_address.protocol: only TCP is supported", where)
	}
	ip, err := netip.ParseAddr(sa.Address)
	if err != nil || ip.Zone() != "" {
		return Address{}, fmt.Errorf("malformed IP address: %s", sa.Address)
	}
	var port int64
	if sa.PortValue != nil {
		port = *sa.PortValue
	}
	if port < 0 || port > 65535 {
		return Address{}, fmt.Errorf("%s.socket_address.port_value: value must be less than or equal to 65535, got %s", where, strconv.FormatInt(port, 10))
	}
	return Address{IP: ip, Port: uint16(port)}, nil
}

func convertListener(l listener, where string) (Listener, error) {
	addr, err := convertAddress(l.Address, where+".address")
	if err != nil {
		return Listener{}, err
	}
	out := Listener{Name: l.Name, Address: addr, Status: 200}
	if len(l.FilterChains) != 1 || len(l.FilterChains[0].Filters) != 1 {
		return Listener{}, fmt.Errorf("%s.filter_chains: fakeenvoy wants exactly one filter chain with one filter", where)
	}
	f := l.FilterChains[0].Filters[0]
	where += ".filter_chains[0].filters[0]"
	if f.Name != HTTPConnectionManager {
		return Listener{}, fmt.Errorf("%s: Didn't find a registered implementation for name: '%s'", where, f.Name)
	}
	hcm := f.TypedConfig
	if hcm == nil || hcm.Type != HTTPConnectionManagerType {
		return Listener{}, fmt.Errorf("%s.typed_config: @type must be %s", where, HTTPConnectionManagerType)
	}
	if hcm.StatPrefix == "" {
		return Listener{}, fmt.Errorf("%s.typed_config.stat_prefix: value length must be at least 1 characters", where)
	}
	switch hcm.CodecType {
	case "", "AUTO", "HTTP1":
	default:
		return Listener{}, fmt.Errorf("%s.typed_config.codec_type: fakeenvoy speaks HTTP/1.1 only", where)
	}
	for j, al := range hcm.AccessLog {
		if al.TypedConfig == nil || al.TypedConfig.Type != FileAccessLogType || al.TypedConfig.Path == "" {
			return Listener{}, fmt.Errorf("%s.typed_config.access_log[%d]: only %s with a path is supported", where, j, FileAccessLogType)
		}
		out.AccessLogPaths = append(out.AccessLogPaths, al.TypedConfig.Path)
	}
	for j, hf := range hcm.HTTPFilters {
		if hf.TypedConfig == nil || hf.TypedConfig.Type != RouterType {
			return Listener{}, fmt.Errorf("%s.typed_config.http_filters[%d]: only the router filter is supported", where, j)
		}
	}
	rc := hcm.RouteConfig
	if rc == nil || len(rc.VirtualHosts) != 1 || len(rc.VirtualHosts[0].Routes) != 1 {
		return Listener{}, fmt.Errorf("%s.typed_config.route_config: fakeenvoy wants one virtual host with one route", where)
	}
	r := rc.VirtualHosts[0].Routes[0]
	if r.DirectResponse == nil {
		return Listener{}, fmt.Errorf("%s.typed_config.route_config: the route must be a direct_response", where)
	}
	if s := r.DirectResponse.Status; s != nil {
		if *s < 200 || *s > 599 {
			return Listener{}, fmt.Errorf("%s: direct_response.status: value must be inside range [200, 600), got %d", where, *s)
		}
		out.Status = int(*s)
	}
	if r.DirectResponse.Body != nil {
		out.Body = r.DirectResponse.Body.InlineString
	}
	return out, nil
}
