package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const example = "../../../examples/fakeenvoy.yaml"

func TestExampleConfigParses(t *testing.T) {
	c, err := Load(example)
	require.NoError(t, err)
	require.NotNil(t, c.Admin)
	assert.Equal(t, "127.0.0.1:9901", c.Admin.String())
	require.Len(t, c.Listeners, 1)
	l := c.Listeners[0]
	assert.Equal(t, "demo", l.Name)
	assert.Equal(t, "127.0.0.1:10000", l.Address.String())
	assert.Equal(t, 200, l.Status)
	assert.Equal(t, "hello from the hot restart demo\n", l.Body)
	assert.Equal(t, []string{"/tmp/fakeenvoy-demo-access.log"}, l.AccessLogPaths)
}

func listenerDoc(extra string) string {
	return `static_resources:
  listeners:
  - name: a
    address: {socket_address: {address: "::1", port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: a
          route_config:
            virtual_hosts:
            - name: a
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                direct_response: {status: 503` + extra + `}
`
}

func TestPortZeroAndIPv6(t *testing.T) {
	c, err := Parse([]byte(listenerDoc("")))
	require.NoError(t, err)
	assert.Nil(t, c.Admin)
	assert.Equal(t, "[::1]:0", c.Listeners[0].Address.String())
	assert.Equal(t, 503, c.Listeners[0].Status)
}

func TestRejections(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown top-level field": "bogus: 1\n",
		"unknown admin field":     "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}, bogus: 2}\n",
		"bad ip":                  "admin: {address: {socket_address: {address: localhost, port_value: 1}}}\n",
		"port too big":            "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 70000}}}\n",
		"unknown route field":     listenerDoc(", bogus: 1"),
		"bad status":              listenerDoc("0"),
		"clusters":                "static_resources: {clusters: [{name: x}]}\n",
		"two documents":           "admin: {}\n---\nadmin: {}\n",
		"empty":                   "",
		"not yaml":                "{{{",
	} {
		_, err := Parse([]byte(doc))
		assert.Error(t, err, name)
	}
}

func TestDuplicateListenerNames(t *testing.T) {
	doc := listenerDoc("")
	dup := doc + doc[len("static_resources:\n  listeners:\n"):]
	_, err := Parse([]byte(dup))
	assert.ErrorContains(t, err, "listener with same name already exists")
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
	f.Add([]byte(listenerDoc("")))
	f.Add([]byte("admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}\n"))
	f.Add([]byte("static_resources: {listeners: [{name: x}]}"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Parse(doc)
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, l := range c.Listeners {
			if l.Name == "" || names[l.Name] || l.Status < 200 || l.Status > 599 {
				t.Fatalf("accepted an invalid listener %+v", l)
			}
			names[l.Name] = true
		}
	})
}
