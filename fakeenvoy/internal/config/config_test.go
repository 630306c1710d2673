package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
// templates them (testdata/envoy/README.md), pass --mode validate.
func TestEnvoyIntegrationBootstraps(t *testing.T) {
	for file, want := range map[string][]Listener{
		"server_v4.yaml": {
			{Name: "listener_0", Addresses: []Address{{IP: loopback}}, ReusePort: false},
			{Name: "listener_1", Addresses: []Address{{IP: loopback}}, ReusePort: true},
		},
		"server_v6.yaml": {
			{Name: "listener_0", Addresses: []Address{{IP: netip.IPv6Loopback()}}, ReusePort: false},
			{Name: "listener_1", Addresses: []Address{{IP: netip.IPv6Loopback()}}, ReusePort: true},
		},
		"server_reuse_port.yaml": {
			{Name: "listener_0", Addresses: []Address{{IP: loopback}}, ReusePort: true},
			{Name: "listener_1", Addresses: []Address{{IP: loopback}}, ReusePort: true},
		},
		"server_multiple_addresses.yaml": {
			{Name: "listener_0", Addresses: []Address{{IP: loopback}, {IP: loopback}}, ReusePort: true},
		},
		"server_unix_listener.yaml": {
			{Name: "listener_0", Addresses: []Address{{Path: "/tmp/envoy-test/sockets/unix-sockets.listener_0"}}, ReusePort: true},
		},
	} {
		t.Run(file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata/envoy", file))
			require.NoError(t, err)
			var got []Listener
			for _, l := range c.Listeners {
				got = append(got, Listener{Name: l.Name, Addresses: l.Addresses, ReusePort: l.ReusePort})
			}
			assert.Equal(t, want, got)
			// The HTTP listener is served: routes to clusters, health check.
			h := c.Listeners[0].HTTP
			require.NotNil(t, h)
			assert.Equal(t, "router", h.StatPrefix)
			assert.NotEmpty(t, c.Clusters[h.VirtualHosts[len(h.VirtualHosts)-1].GetRoutes()[0].GetRoute().GetCluster()].Endpoints)
		})
	}
}

func TestHealthCheckAndCaseInsensitiveEnums(t *testing.T) {
	c, err := Load("testdata/envoy/server_v6.yaml")
	require.NoError(t, err)
	assert.Equal(t, "V6_ONLY", c.Bootstrap.GetStaticResources().GetClusters()[0].GetDnsLookupFamily().String())
	hc := c.Listeners[0].HTTP.HealthCheck
	require.NotNil(t, hc)
	assert.False(t, hc.PassThrough)
	assert.Nil(t, c.Listeners[1].HTTP, "the redis proxy listener is parsed, not served")
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

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	assert.ErrorContains(t, err, "unable to read file")
}

// FuzzParse: any input either parses into a self-consistent config or
// errors; it never panics.
func FuzzParse(f *testing.F) {
	for _, p := range []string{example, "testdata/envoy/server_v4.yaml", "testdata/envoy/server_unix_listener.yaml"} {
		b, err := os.ReadFile(p)
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
