package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	healthcheckv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/health_check/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// This file derives what fakeenvoy serves (listeners, their HTTP
// connection managers, the clusters they route to) from a valid bootstrap.

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
