package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// listenerDoc is a bootstrap with an admin on a kernel-chosen port and one
// listener named "kinds" whose addresses and reuse-port setting the
// scenario picks; it answers every request with a direct response.
func listenerDoc(addresses string) string {
	return fmt.Sprintf(`admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
  - name: kinds
%s    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: kinds
          route_config:
            virtual_hosts:
            - name: kinds
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_string: "kinds\n"}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`, addresses)
}

func socketAddress(a string) string {
	host, port, _ := net.SplitHostPort(a)
	return fmt.Sprintf("{socket_address: {address: %q, port_value: %s}}", host, port)
}

// listenerStatus is one entry of /listeners?format=json.
type listenerStatus struct {
	Name         string         `json:"name"`
	LocalAddress protoAddress   `json:"local_address"`
	Additional   []protoAddress `json:"additional_local_addresses"`
}

type protoAddress struct {
	SocketAddress *struct {
		Address   string `json:"address"`
		PortValue int    `json:"port_value"`
	} `json:"socket_address,omitempty"`
	Pipe *struct {
		Path string `json:"path"`
	} `json:"pipe,omitempty"`
}

// dialTarget is where a client connects for the address: ip:port or the
// unix socket's path.
func (a protoAddress) dialTarget() (network, address string) {
	if a.Pipe != nil {
		return "unix", a.Pipe.Path
	}
	return "tcp", net.JoinHostPort(a.SocketAddress.Address, fmt.Sprint(a.SocketAddress.PortValue))
}

func (a protoAddress) yaml() string {
	if a.Pipe != nil {
		return fmt.Sprintf("{pipe: {path: %q}}", a.Pipe.Path)
	}
	_, target := a.dialTarget()
	return socketAddress(target)
}

// listeners fetches /listeners?format=json from the epoch's admin.
func listeners(t *testing.T, admin string) []listenerStatus {
	t.Helper()
	code, body := get(t, "http://"+admin+"/listeners?format=json")
	require.Equal(t, http.StatusOK, code)
	var out struct {
		ListenerStatuses []listenerStatus `json:"listener_statuses"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	return out.ListenerStatuses
}

// getOn sends GET / for host over a new connection to the address and
// reads the whole response; the connection stays open, the caller's to
// close (the test's cleanup closes it too).
func getOn(t *testing.T, a protoAddress, host string) (net.Conn, *http.Response, string) {
	t.Helper()
	network, target := a.dialTarget()
	conn, err := net.DialTimeout(network, target, wait)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(wait)))
	_, err = fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.NoError(t, conn.SetDeadline(time.Time{}))
	return conn, resp, string(body)
}

// getVia sends GET / over a fresh connection to the address and returns the
// epoch that answered.
func getVia(t *testing.T, a protoAddress) string {
	t.Helper()
	conn, resp, body := getOn(t, a, "kinds")
	conn.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(body, "kinds\n"), "body %q", body)
	return resp.Header.Get("x-fakeenvoy-epoch")
}

// Given epoch 0 listening on each kind of address Envoy's integration
// bootstraps use, when epoch 1 starts with the addresses epoch 0 reports
// (as Envoy's hot restart test rewrites them with tools/socket_passing),
// then every socket is handed over by address, /listeners?format=json is
// the same before and after, and epoch 1 answers on every address.
func TestHotRestartThroughEachListenerKind(t *testing.T) {
	for name, addresses := range map[string]func(dir string) string{
		"tcp": func(string) string {
			return "    address: " + socketAddress("127.0.0.1:0") + "\n    enable_reuse_port: false\n"
		},
		"multiple addresses": func(string) string {
			return "    address: " + socketAddress("127.0.0.1:0") + "\n    additional_addresses:\n    - address: " + socketAddress("127.0.0.1:0") + "\n    enable_reuse_port: false\n"
		},
		"reuse port": func(string) string {
			return "    address: " + socketAddress("127.0.0.1:0") + "\n    enable_reuse_port: true\n"
		},
		"unix path": func(dir string) string {
			return fmt.Sprintf("    address: {pipe: {path: %q, mode: 0600}}\n", dir+"/listener.sock")
		},
	} {
		t.Run(name, func(t *testing.T) {
			sb := newSandbox(t)
			write := func(file, doc string) string {
				require.NoError(t, os.WriteFile(sb.Path(file), []byte(doc), 0o644))
				return sb.Path(file)
			}
			e0 := sb.start(0, "-c", write("e0.yaml", listenerDoc(addresses(sb.Dir))), "--fake-state-path", sb.Path("state0.json"))
			st0 := readState(t, sb.Path("state0.json"), 0)
			before := listeners(t, st0.AdminAddress)
			require.Len(t, before, 1)
			all := append([]protoAddress{before[0].LocalAddress}, before[0].Additional...)
			for _, a := range all {
				assert.Equal(t, "0", getVia(t, a))
			}

			// Epoch 1's bootstrap names the addresses epoch 0 is bound to.
			doc := "    address: " + all[0].yaml() + "\n"
			if len(all) > 1 {
				doc += "    additional_addresses:\n"
				for _, a := range all[1:] {
					doc += "    - address: " + a.yaml() + "\n"
				}
			}
			if strings.Contains(name, "reuse") {
				doc += "    enable_reuse_port: true\n"
			} else if a := all[0]; a.SocketAddress != nil {
				doc += "    enable_reuse_port: false\n"
			}
			e1 := sb.start(1, "-c", write("e1.yaml", listenerDoc(doc)), "--fake-state-path", sb.Path("state1.json"),
				"--fake-drain-time", "200ms", "--parent-shutdown-time-s", "600")
			for _, a := range all {
				_, target := a.dialTarget()
				e1.WaitLine(regexp.QuoteMeta("listener 'kinds' on "+target+" (from parent)"), 1, wait)
			}
			st1 := readState(t, sb.Path("state1.json"), 1)
			e0.WaitLine("closing and draining listeners", 1, wait)
			assert.Equal(t, before, listeners(t, st1.AdminAddress), "/listeners?format=json before and after")
			// Epoch 0 logs the drain, then stops accepting: a connection made
			// in between may still be its own, in Envoy too.
			for _, a := range all {
				proctest.WaitFor(t, wait, "the socket at "+a.yaml()+" answers for epoch 1", func() bool { return getVia(t, a) == "1" })
			}

			e1.Signal(syscall.SIGTERM)
			assert.Equal(t, proctest.Exit{}, e1.Wait(wait))
			assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
			assert.Empty(t, sb.leftovers())
			if p := all[0].Pipe; p != nil {
				fi, err := os.Stat(p.Path)
				require.NoError(t, err, "Envoy leaves the pipe's path in place")
				assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			}
		})
	}
}

// Given a listener whose socket epoch 1 cannot take over (epoch 1 asks
// for an address epoch 0 is not bound to), epoch 1 binds its own, as
// Envoy does when the addresses differ.
func TestAddressMismatchBindsAFreshSocket(t *testing.T) {
	sb := newSandbox(t)
	doc := listenerDoc("    address: " + socketAddress("127.0.0.1:0") + "\n")
	require.NoError(t, os.WriteFile(sb.Path("c.yaml"), []byte(doc), 0o644))
	e0 := sb.startRunning(0, "-c", sb.Path("c.yaml"))
	e1 := sb.start(1, "-c", sb.Path("c.yaml"), "--parent-shutdown-time-s", "600")
	e1.WaitLine(`listener 'kinds' on 127\.0\.0\.1:\d+ \(bound\)`, 1, wait)
	e0.WaitLine("closing and draining listeners", 1, wait)
	e1.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e1.Wait(wait))
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
}
