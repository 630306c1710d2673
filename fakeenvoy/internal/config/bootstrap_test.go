package config

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
)

// The bootstrap the project's tests and bench write
// (internal/fakeenvoytest) parses into exactly the listener it describes.
func TestFakeenvoytestBootstrapParses(t *testing.T) {
	for name, tc := range map[string]struct {
		b          fakeenvoytest.Bootstrap
		accessLogs []string
	}{
		"with access log": {
			b:          fakeenvoytest.Bootstrap{AdminPort: 9901, Port: 10000, Listener: "web", Body: "hello\n", AccessLog: "/tmp/a dir: #1/access.log"},
			accessLogs: []string{"/tmp/a dir: #1/access.log"},
		},
		"without access log, kernel-chosen ports": {
			b: fakeenvoytest.Bootstrap{Listener: "bench", Body: "ok\n"},
		},
		"body needing quotes": {
			b: fakeenvoytest.Bootstrap{Listener: "web", Body: "say \"hi\": {x}\t\\\n"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(tc.b.YAML()))
			require.NoError(t, err, "document:\n%s", tc.b.YAML())
			require.NotNil(t, c.Admin)
			assert.Equal(t, Address{IP: loopback, Port: uint16(tc.b.AdminPort)}, *c.Admin)
			assert.Equal(t, []Listener{{
				Name:           tc.b.Listener,
				Address:        Address{IP: loopback, Port: uint16(tc.b.Port)},
				Status:         200,
				Body:           tc.b.Body,
				AccessLogPaths: tc.accessLogs,
			}}, c.Listeners)
		})
	}
}

var loopback = netip.MustParseAddr("127.0.0.1")
