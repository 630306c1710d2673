package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/envoybootstraps"
	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
)

const example = "../../../examples/fakeenvoy.yaml"

var loopback = netip.MustParseAddr("127.0.0.1")

func TestExampleConfigParses(t *testing.T) {
	c, err := Load(example)
	require.NoError(t, err)
	require.NotNil(t, c.Admin)
	assert.Equal(t, "127.0.0.1:9901", c.Admin.String())
	require.Len(t, c.Listeners, 1)
	l := c.Listeners[0]
	assert.Equal(t, "demo", l.Name)
	assert.Equal(t, []Address{{IP: loopback, Port: 10000}}, l.Addresses)
	assert.True(t, l.ReusePort, "enable_reuse_port defaults to true on Linux")
	require.NotNil(t, l.HTTP)
	assert.Equal(t, []string{"/tmp/fakeenvoy-demo-access.log"}, l.HTTP.AccessLogPaths)
	require.Len(t, l.HTTP.VirtualHosts, 1)
	dr := l.HTTP.VirtualHosts[0].GetRoutes()[0].GetDirectResponse()
	assert.Equal(t, uint32(200), dr.GetStatus())
	assert.Equal(t, "hello from the hot restart demo\n", dr.GetBody().GetInlineString())
}

// The bootstrap the project's tests and bench write parses into the
// listener it describes.
func TestFakeenvoytestBootstrapParses(t *testing.T) {
	b := fakeenvoytest.Bootstrap{AdminPort: 9901, Port: 10000, Listener: "web", Body: "say \"hi\": {x}\t\\\n", AccessLog: "/tmp/a dir: #1/access.log"}
	c, err := Parse([]byte(b.YAML()))
	require.NoError(t, err, "document:\n%s", b.YAML())
	require.Len(t, c.Listeners, 1)
	assert.Equal(t, "web", c.Listeners[0].Name)
	assert.Equal(t, []Address{{IP: loopback, Port: 10000}}, c.Listeners[0].Addresses)
	assert.Equal(t, []string{b.AccessLog}, c.Listeners[0].HTTP.AccessLogPaths)
	assert.Equal(t, b.Body, c.Listeners[0].HTTP.VirtualHosts[0].GetRoutes()[0].GetDirectResponse().GetBody().GetInlineString())
}

// Envoy's own integration bootstraps, templated as its hot restart test
// templates them (internal/envoybootstraps), pass --mode validate, and the
// listeners and routes fakeenvoy serves come out of them.
func TestEnvoyIntegrationBootstraps(t *testing.T) {
	v6 := netip.IPv6Loopback()
	want := map[string][]Listener{
		"v4":                 {{Name: "listener_0", Addresses: []Address{{IP: loopback}}, ReusePort: false}},
		"v6":                 {{Name: "listener_0", Addresses: []Address{{IP: v6}}, ReusePort: false}},
		"reuse_port":         {{Name: "listener_0", Addresses: []Address{{IP: loopback}}, ReusePort: true}},
		"multiple_addresses": {{Name: "listener_0", Addresses: []Address{{IP: loopback}, {IP: loopback}}, ReusePort: true}},
		"uds":                {{Name: "listener_0", Addresses: []Address{{Path: "/tmp/s/unix-sockets.listener_0"}}, ReusePort: true}},
	}
	for _, v := range envoybootstraps.Variants() {
		t.Run(v.Name, func(t *testing.T) {
			doc, err := v.Render("/tmp/t", "/tmp/s")
			require.NoError(t, err)
			c, err := Parse(doc)
			require.NoError(t, err)
			var got []Listener
			for _, l := range c.Listeners {
				got = append(got, Listener{Name: l.Name, Addresses: l.Addresses, ReusePort: l.ReusePort})
			}
			assert.Equal(t, want[strings.TrimSuffix(v.Name, "_io_uring")], got)
			// The HTTP listener is served: routes to clusters.
			h := c.Listeners[0].HTTP
			require.NotNil(t, h)
			assert.Equal(t, "router", h.StatPrefix)
			assert.NotEmpty(t, c.Clusters[h.VirtualHosts[len(h.VirtualHosts)-1].GetRoutes()[0].GetRoute().GetCluster()].Endpoints)
		})
	}
}

func TestHealthCheckAndCaseInsensitiveEnums(t *testing.T) {
	doc, err := envoybootstraps.Variants()[1].Render("/tmp/t", "/tmp/s") // v6
	require.NoError(t, err)
	c, err := Parse(doc)
	require.NoError(t, err)
	assert.Equal(t, "V6_ONLY", c.Bootstrap.GetStaticResources().GetClusters()[0].GetDnsLookupFamily().String())
	hc := c.Listeners[0].HTTP.HealthCheck
	require.NotNil(t, hc)
	assert.False(t, hc.PassThrough)
}

// traffic_direction and drain_type are read: /drain_listeners?inboundonly
// and a failed health check tell listeners apart by them; Envoy's defaults
// (UNSPECIFIED, DEFAULT) are neither inbound nor modify-only.
func TestTrafficDirectionAndDrainType(t *testing.T) {
	doc := `static_resources:
  listeners:
  - name: plain
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains: [{filters: [{name: r, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy, settings: {op_timeout: 1s}, stat_prefix: r, prefix_routes: {catch_all_route: {cluster: c}}}}]}]
  - name: in
    traffic_direction: inbound
    drain_type: MODIFY_ONLY
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains: [{filters: [{name: r, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy, settings: {op_timeout: 1s}, stat_prefix: r, prefix_routes: {catch_all_route: {cluster: c}}}}]}]
  - name: out
    traffic_direction: OUTBOUND
    drain_type: DEFAULT
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains: [{filters: [{name: r, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy, settings: {op_timeout: 1s}, stat_prefix: r, prefix_routes: {catch_all_route: {cluster: c}}}}]}]
  clusters:
  - name: c
    load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 4}}}}]}]}
`
	c, err := Parse([]byte(doc))
	require.NoError(t, err)
	require.Len(t, c.Listeners, 3)
	for i, want := range []struct{ inbound, modifyOnly bool }{{false, false}, {true, true}, {false, false}} {
		assert.Equal(t, want.inbound, c.Listeners[i].Inbound, c.Listeners[i].Name)
		assert.Equal(t, want.modifyOnly, c.Listeners[i].DrainModifyOnly, c.Listeners[i].Name)
	}
}

// A listener whose filter is not the HTTP connection manager (here Envoy's
// redis proxy, as an older server.yaml had) is parsed, not served.
func TestRedisProxyListenerIsParsedNotServed(t *testing.T) {
	c, err := Parse([]byte(`static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: redis
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          settings: {op_timeout: 0.4s}
          stat_prefix: redis
          prefix_routes: {catch_all_route: {cluster: redis}}
  clusters:
  - name: redis
    connect_timeout: 5s
    load_assignment:
      cluster_name: redis
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 4}}}}]}]
`))
	require.NoError(t, err)
	require.Len(t, c.Listeners, 1)
	assert.Nil(t, c.Listeners[0].HTTP)
}

func hcmDoc(hcm string) string {
	return `static_resources:
  listeners:
  - name: a
    address: {socket_address: {address: "::1", port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
` + hcm
}

const okHCM = `          stat_prefix: a
          route_config:
            virtual_hosts:
            - name: a
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                direct_response: {status: 503}
`

func TestPortZeroIPv6AndPipe(t *testing.T) {
	c, err := Parse([]byte(hcmDoc(okHCM)))
	require.NoError(t, err)
	assert.Nil(t, c.Admin)
	assert.Equal(t, "[::1]:0", c.Listeners[0].Addresses[0].String())

	pipe := strings.Replace(hcmDoc(okHCM), `{socket_address: {address: "::1", port_value: 0}}`, `{pipe: {path: "/run/x.sock", mode: 0600}}`, 1)
	c, err = Parse([]byte(pipe))
	require.NoError(t, err)
	a := c.Listeners[0].Addresses[0]
	assert.True(t, a.Pipe())
	assert.Equal(t, "/run/x.sock", a.String())
	assert.Equal(t, "unix", a.Network())
	assert.Equal(t, os.FileMode(0o600), a.Mode)
}

// Each kind of bad input gets Envoy's message for it.
func TestRejectionsInEnvoysWords(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown top-level field": {
			"bogus: 1\n",
			"Protobuf message (type envoy.config.bootstrap.v3.Bootstrap reason INVALID_ARGUMENT:bogus: Cannot find field.) has unknown fields",
		},
		"unknown nested field": {
			"admin: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}, bogus: 2}\n",
			"Protobuf message (type envoy.config.bootstrap.v3.Bootstrap reason INVALID_ARGUMENT:(admin) bogus: Cannot find field.) has unknown fields",
		},
		"unknown field inside a typed config": {
			hcmDoc(okHCM + "          bogus: 1\n"),
			"Protobuf message (type envoy.config.bootstrap.v3.Bootstrap reason INVALID_ARGUMENT:(static_resources.listeners[0].filter_chains[0].filters[0].typed_config) bogus: Cannot find field.) has unknown fields",
		},
		"unknown @type": {
			strings.Replace(hcmDoc(okHCM), "http_connection_manager.v3.HttpConnectionManager", "nope.v3.Nope", 1),
			"Unable to parse JSON as proto (INVALID_ARGUMENT:(static_resources.listeners[0].filter_chains[0].filters[0].typed_config) Invalid type URL, unknown type: envoy.extensions.filters.network.nope.v3.Nope): {",
		},
		"bad value": {
			"admin: {address: {socket_address: {address: 127.0.0.1, port_value: x}}}\n",
			"Unable to parse JSON as proto (INVALID_ARGUMENT:",
		},
		"constraint in the bootstrap": {
			"admin: {address: {socket_address: {address: 127.0.0.1, port_value: 70000}}}\n",
			"Proto constraint validation failed (BootstrapValidationError.Admin: embedded message failed validation | caused by AdminValidationError.Address: embedded message failed validation | caused by AddressValidationError.SocketAddress: embedded message failed validation | caused by SocketAddressValidationError.PortValue: value must be less than or equal to 65535): ",
		},
		"constraint in a typed config": {
			hcmDoc(strings.Replace(okHCM, "stat_prefix: a", `stat_prefix: ""`, 1)),
			"Proto constraint validation failed (HttpConnectionManagerValidationError.StatPrefix: value length must be at least 1 characters): ",
		},
		"direct response status out of range": {
			hcmDoc(strings.Replace(okHCM, "status: 503", "status: 5030", 1)),
			"Proto constraint validation failed (HttpConnectionManagerValidationError.RouteConfig: embedded message failed validation | caused by RouteConfigurationValidationError.VirtualHosts[0]: embedded message failed validation | caused by VirtualHostValidationError.Routes[0]: embedded message failed validation | caused by RouteValidationError.DirectResponse: embedded message failed validation | caused by DirectResponseActionValidationError.Status: value must be inside range [200, 600)): ",
		},
		"route to an unknown cluster": {
			hcmDoc(strings.Replace(okHCM, "direct_response: {status: 503}", "route: {cluster: nope}", 1)),
			"error adding listener '[::1]:0': route: unknown cluster 'nope'",
		},
		"bad ip": {
			"static_resources: {listeners: [{name: a, address: {socket_address: {address: localhost, port_value: 1}}, filter_chains: [{}]}]}\n",
			"error adding listener 'localhost:1': malformed IP address: localhost",
		},
		"duplicate listener names": {
			hcmDoc(okHCM) + strings.TrimPrefix(hcmDoc(okHCM), "static_resources:\n  listeners:\n"),
			"error adding listener named 'a': listener with same name already exists",
		},
		"router not the last http filter": {
			hcmDoc(okHCM + `          http_filters:
          - {name: r, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          - {name: hc, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck, pass_through_mode: false}}
`),
			"error adding listener '[::1]:0': Error: terminal filter named r of type envoy.filters.http.router must be the last filter in a http filter chain.",
		},
		"a health check last, no router": {
			hcmDoc(okHCM + `          http_filters:
          - {name: hc, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck, pass_through_mode: false}}
`),
			"error adding listener '[::1]:0': Error: non-terminal filter named hc of type envoy.filters.http.health_check is the last filter in a http filter chain.",
		},
		"a network filter after the connection manager": {
			hcmDoc(okHCM) + `      - name: tcp
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}
`,
			"error adding listener '[::1]:0': Error: terminal filter named envoy.filters.network.http_connection_manager of type envoy.filters.network.http_connection_manager must be the last filter in a network filter chain.",
		},
		"abstract pipe with a mode": {
			"static_resources: {listeners: [{name: a, address: {pipe: {path: '@abs', mode: 384}}, filter_chains: [{}]}]}\n",
			"error adding listener '@abs': Cannot set mode for Abstract AF_UNIX sockets",
		},
		"empty":    {"", "Unable to convert YAML as JSON: "},
		"not yaml": {"{{{", "Unable to convert YAML as JSON: "},
		"a scalar": {"hello\n", "Unable to convert YAML as JSON: hello"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), tc.want), "got  %s\nwant %s…", err, tc.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

// Load reads YAML only from a .yaml or .yml path (any case) and JSON from
// any other, as Envoy's loadFromFile does; JSON must be one document.
func TestLoadPicksTheParserByExtension(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(doc), 0o644))
		return p
	}
	yamlDoc := "node: {id: a}\n"
	for _, name := range []string{"c.yaml", "c.YML"} {
		_, err := Load(write(name, yamlDoc))
		assert.NoError(t, err, name)
	}
	_, err := Load(write("c.conf", yamlDoc))
	assert.ErrorContains(t, err, "Unable to parse JSON as proto")
	_, err = Load(write("c.json", `{"node": {"id": "a"}}`))
	assert.NoError(t, err)
	_, err = Load(write("two.json", `{"node": {"id": "a"}} {"bogus": 1}`))
	assert.ErrorContains(t, err, "Unable to parse JSON as proto")
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	assert.ErrorContains(t, err, "unable to read file")
}

// FuzzParse: any input either parses into a self-consistent config or
// errors; it never panics.
func FuzzParse(f *testing.F) {
	b, err := os.ReadFile(example)
	require.NoError(f, err)
	f.Add(b)
	for _, v := range envoybootstraps.Variants()[:3] {
		b, err := v.Render("/tmp/t", "/tmp/s")
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(hcmDoc(okHCM)))
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Parse(doc)
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, l := range c.Listeners {
			if l.Name == "" || names[l.Name] || len(l.Addresses) == 0 {
				t.Fatalf("accepted an invalid listener %+v", l)
			}
			names[l.Name] = true
		}
	})
}

// The newest upstream server.yaml reachable here still sets
// DefaultSocketInterface's enable_io_uring, a field Envoy's API has since
// replaced; on the API fakeenvoy parses against it is an unknown field, as
// it is for an Envoy of that API.
func TestRetiredEnableIOURingIsAnUnknownField(t *testing.T) {
	doc, err := envoybootstraps.Verbatim("server_unix_listener.yaml")
	require.NoError(t, err)
	text := strings.NewReplacer("{{ socket_dir }}", "/tmp/s", "{{ ip_loopback_address }}", "127.0.0.1",
		"{{ null_device_path }}", "/dev/null", "{{ enable_io_uring }}", "false").Replace(string(doc))
	_, err = Parse([]byte(text))
	assert.ErrorContains(t, err, "INVALID_ARGUMENT:(bootstrap_extensions[0].typed_config) enable_io_uring: Cannot find field.")
}

// Mirrors source/server/configuration_impl.cc StatsConfigImpl: the flush
// interval (5 s by default, the bootstrap's validation bounds it to
// [1 ms, 300 s)), stats_flush_on_admin, and the error when both are set.
func TestStatsConfig(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want StatsConfig
		err  string
	}{
		{"{}", StatsConfig{FlushInterval: 5 * time.Second}, ""},
		{"stats_flush_interval: 0.25s", StatsConfig{FlushInterval: 250 * time.Millisecond}, ""},
		{"stats_flush_on_admin: true", StatsConfig{FlushInterval: 5 * time.Second, FlushOnAdmin: true}, ""},
		{"stats_flush_on_admin: true\nstats_flush_interval: 1s", StatsConfig{}, "Only one of stats_flush_interval or stats_flush_on_admin should be set!"},
	} {
		c, err := Parse([]byte(tc.doc))
		require.NoError(t, err, tc.doc)
		got, err := c.Stats()
		if tc.err != "" {
			assert.EqualError(t, err, tc.err, tc.doc)
			continue
		}
		require.NoError(t, err, tc.doc)
		assert.Equal(t, tc.want, got, tc.doc)
	}
	for _, doc := range []string{"stats_flush_interval: 0s", "stats_flush_interval: 300s", "stats_flush_on_admin: false"} {
		_, err := Parse([]byte(doc))
		assert.ErrorContains(t, err, "Proto constraint validation failed", doc)
	}
}
