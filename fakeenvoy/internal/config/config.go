// Package config reads an Envoy v3 bootstrap through Envoy's own API types
// (github.com/envoyproxy/go-control-plane/envoy): YAML → JSON → protojson
// with the supported extensions registered, then the generated constraint
// validation, the way Envoy's MessageUtil loads and validates it. It then
// derives what fakeenvoy serves: admin, listeners with their addresses, and
// each HTTP connection manager's routes, health check and access logs.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	healthcheckv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/health_check/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
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

// unmarshal is MessageUtil::loadFromJson: Envoy's error texts for unknown
// fields and for everything else.
func unmarshal(doc []byte, m proto.Message) error {
	typeName := m.ProtoReflect().Descriptor().FullName()
	v, err := decodeJSON(doc)
	if err == nil {
		v, err = normalize(m.ProtoReflect().Descriptor(), v, "")
	} else {
		err = &parseError{reason: err.Error()}
	}
	if err == nil {
		var norm []byte
		if norm, err = json.Marshal(v); err == nil {
			if uerr := protojson.Unmarshal(norm, m); uerr != nil {
				err = &parseError{reason: strings.TrimPrefix(uerr.Error(), "proto: ")}
			}
		}
	}
	var pe *parseError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe) && pe.unknownField:
		return fmt.Errorf("Protobuf message (type %s reason %s) has unknown fields", typeName, pe.status())
	case errors.As(err, &pe):
		return fmt.Errorf("Unable to parse JSON as proto (%s): %s", pe.status(), compactJSON(doc))
	}
	return err
}

func compactJSON(doc []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, doc) != nil {
		return string(doc)
	}
	return buf.String()
}

// validate runs the generated constraint checks on the bootstrap and on
// every typed config inside it, as Envoy does when it builds each
// extension, and reports the first violation as Envoy's
// ProtoValidationException does.
func validate(root proto.Message) error {
	var first error
	var visit func(m protoreflect.Message)
	check := func(m proto.Message) {
		if v, ok := m.(interface{ ValidateAll() error }); ok && first == nil {
			if err := v.ValidateAll(); err != nil {
				first = fmt.Errorf("Proto constraint validation failed (%s): %s", pgvError(err), prototext.MarshalOptions{}.Format(m))
			}
		}
	}
	visit = func(m protoreflect.Message) {
		if a, ok := m.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err == nil {
				check(inner)
				visit(inner.ProtoReflect())
			}
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			switch {
			case fd.IsList():
				for i := 0; i < v.List().Len(); i++ {
					visit(v.List().Get(i).Message())
				}
			case fd.IsMap():
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
						visit(mv.Message())
						return true
					})
				}
			default:
				visit(v.Message())
			}
			return first == nil
		})
	}
	check(root)
	if first == nil {
		visit(root.ProtoReflect())
	}
	return first
}

// pgvError renders a protoc-gen-validate error the way the C++ generated
// validators word it ("ListenerValidationError.Name: value length must be
// at least 1 characters | caused by ..."); Go's says "invalid Listener.Name".
func pgvError(err error) string {
	type pgv interface {
		Field() string
		Reason() string
		Cause() error
		ErrorName() string
	}
	var multi interface{ AllErrors() []error }
	if errors.As(err, &multi) && len(multi.AllErrors()) > 0 {
		err = multi.AllErrors()[0]
	}
	e, ok := err.(pgv)
	if !ok {
		return err.Error()
	}
	s := fmt.Sprintf("%s.%s: %s", e.ErrorName(), e.Field(), strings.ReplaceAll(e.Reason(), " runes", " characters"))
	if e.Cause() != nil {
		s += " | caused by " + pgvError(e.Cause())
	}
	return s
}

// build derives what fakeenvoy serves from a valid bootstrap.
func build(b *bootstrapv3.Bootstrap) (*Config, error) {
	c := &Config{Bootstrap: b, Clusters: map[string]Cluster{}}
	if a := b.GetAdmin().GetAddress(); a != nil {
		addr, err := address(a)
		if err != nil {
			return nil, err
		}
		c.Admin = &addr
	}
	for _, cl := range b.GetStaticResources().GetClusters() {
		if _, dup := c.Clusters[cl.GetName()]; dup {
			return nil, fmt.Errorf("cluster manager: duplicate cluster '%s' found", cl.GetName())
		}
		c.Clusters[cl.GetName()] = cluster(cl)
	}
	names := map[string]bool{}
	bound := map[string]string{}
	for i, l := range b.GetStaticResources().GetListeners() {
		conv, err := listener(l, c.Clusters)
		if err != nil {
			return nil, fmt.Errorf("error adding listener '%s': %w", addressText(l.GetAddress()), err)
		}
		if conv.Name == "" {
			conv.Name = generatedName(i)
		}
		if names[conv.Name] {
			return nil, fmt.Errorf("error adding listener named '%s': listener with same name already exists", conv.Name)
		}
		names[conv.Name] = true
		for _, a := range conv.Addresses {
			if a.Port == 0 && !a.Pipe() {
				continue
			}
			if other, dup := bound[a.String()]; dup {
				return nil, fmt.Errorf("error adding listener '%s': listener '%s' has duplicate address '%s' as existing listener", a, conv.Name, other)
			}
			bound[a.String()] = conv.Name
		}
		c.Listeners = append(c.Listeners, conv)
	}
	return c, nil
}

// generatedName stands in for the UUID Envoy gives an unnamed listener;
// fakeenvoy's is stable across epochs, so /listeners compares across a
// hot restart (a divergence listed in the README).
func generatedName(i int) string { return "listener_" + strconv.Itoa(i) }

// addressText names a listener in an error before its address is known
// good, as Envoy's address string would.
func addressText(a *corev3.Address) string {
	switch {
	case a.GetSocketAddress() != nil:
		return hostPort(a.GetSocketAddress())
	case a.GetPipe() != nil:
		return a.GetPipe().GetPath()
	}
	return "(no address)"
}

func address(a *corev3.Address) (Address, error) {
	switch {
	case a.GetSocketAddress() != nil:
		sa := a.GetSocketAddress()
		if sa.GetProtocol() != corev3.SocketAddress_TCP {
			return Address{}, fmt.Errorf("fakeenvoy listens on TCP only, not %s", sa.GetProtocol())
		}
		if sa.GetNamedPort() != "" || sa.GetResolverName() != "" {
			return Address{}, errors.New("fakeenvoy needs a port_value, not named_port or resolver_name")
		}
		ip, err := netip.ParseAddr(sa.GetAddress())
		if err != nil || ip.Zone() != "" {
			return Address{}, fmt.Errorf("malformed IP address: %s", sa.GetAddress())
		}
		return Address{IP: ip, Port: uint16(sa.GetPortValue())}, nil
	case a.GetPipe() != nil:
		p := a.GetPipe()
		if strings.HasPrefix(p.GetPath(), "@") && p.GetMode() != 0 {
			return Address{}, errors.New("Cannot set mode for Abstract AF_UNIX sockets")
		}
		return Address{Path: p.GetPath(), Mode: os.FileMode(p.GetMode())}, nil
	}
	return Address{}, errors.New("fakeenvoy supports socket_address and pipe addresses only")
}

func listener(l *listenerv3.Listener, clusters map[string]Cluster) (Listener, error) {
	// enable_reuse_port defaults to true (the deprecated reuse_port can
	// only ask for what is already the default).
	out := Listener{
		Name: l.GetName(), ReusePort: true,
		Inbound:         l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND,
		DrainModifyOnly: l.GetDrainType() == listenerv3.Listener_MODIFY_ONLY,
	}
	if l.GetEnableReusePort() != nil {
		out.ReusePort = l.GetEnableReusePort().GetValue()
	}
	main, err := address(l.GetAddress())
	if err != nil {
		return Listener{}, err
	}
	out.Addresses = append(out.Addresses, main)
	for _, aa := range l.GetAdditionalAddresses() {
		a, err := address(aa.GetAddress())
		if err != nil {
			return Listener{}, err
		}
		if a.Pipe() != main.Pipe() {
			return Listener{}, errors.New("listener additional addresses must be of the same kind as its address")
		}
		out.Addresses = append(out.Addresses, a)
	}
	chains := l.GetFilterChains()
	if len(chains) == 0 {
		return Listener{}, errors.New("no filter chains specified")
	}
	for _, c := range chains {
		var names, urls []string
		for _, f := range c.GetFilters() {
			names, urls = append(names, f.GetName()), append(urls, f.GetTypedConfig().GetTypeUrl())
		}
		if err := checkTerminalFilters("network", names, urls); err != nil {
			return Listener{}, err
		}
	}
	for _, f := range chains[0].GetFilters() {
		if f.GetTypedConfig().GetTypeUrl() != hcmType {
			continue
		}
		h := &hcmv3.HttpConnectionManager{}
		if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
			return Listener{}, err
		}
		if out.HTTP, err = httpConfig(h, clusters); err != nil {
			return Listener{}, err
		}
	}
	return out, nil
}

func httpConfig(h *hcmv3.HttpConnectionManager, clusters map[string]Cluster) (*HTTP, error) {
	out := &HTTP{StatPrefix: h.GetStatPrefix(), AcceptHTTP10: h.GetHttpProtocolOptions().GetAcceptHttp_10()}
	switch h.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO, hcmv3.HttpConnectionManager_HTTP1:
	default:
		return nil, fmt.Errorf("fakeenvoy speaks HTTP/1.1 only, not codec_type %s", h.GetCodecType())
	}
	for _, al := range h.GetAccessLog() {
		if al.GetTypedConfig().GetTypeUrl() != fileLogType {
			continue
		}
		f := &filev3.FileAccessLog{}
		if err := al.GetTypedConfig().UnmarshalTo(f); err != nil {
			return nil, err
		}
		out.AccessLogPaths = append(out.AccessLogPaths, f.GetPath())
	}
	var names, urls []string
	for _, hf := range h.GetHttpFilters() {
		names, urls = append(names, hf.GetName()), append(urls, hf.GetTypedConfig().GetTypeUrl())
	}
	if err := checkTerminalFilters("http", names, urls); err != nil {
		return nil, err
	}
	for _, hf := range h.GetHttpFilters() {
		if hf.GetTypedConfig().GetTypeUrl() != healthCheckType {
			continue
		}
		hc := &healthcheckv3.HealthCheck{}
		if err := hf.GetTypedConfig().UnmarshalTo(hc); err != nil {
			return nil, err
		}
		out.HealthCheck = &HealthCheck{PassThrough: hc.GetPassThroughMode().GetValue(), Headers: hc.GetHeaders()}
	}
	rc := h.GetRouteConfig()
	if rc == nil {
		return nil, errors.New("fakeenvoy serves an inline route_config only (rds and scoped routes are parsed, not served)")
	}
	out.IgnoreHostPort = rc.GetIgnorePortInHostMatching() || h.GetStripAnyHostPort()
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if name := r.GetRoute().GetCluster(); name != "" {
				if _, ok := clusters[name]; !ok {
					return nil, fmt.Errorf("route: unknown cluster '%s'", name)
				}
			}
		}
	}
	out.VirtualHosts = rc.GetVirtualHosts()
	return out, nil
}

func cluster(cl *clusterv3.Cluster) Cluster {
	var out Cluster
	for _, le := range cl.GetLoadAssignment().GetEndpoints() {
		for _, ep := range le.GetLbEndpoints() {
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				continue
			}
			out.Endpoints = append(out.Endpoints, hostPort(sa))
		}
	}
	return out
}

// hostPort is a socket address as host:port, an IPv6 host in brackets.
func hostPort(sa *corev3.SocketAddress) string {
	return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
}
