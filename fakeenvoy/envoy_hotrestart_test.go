package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/envoybootstraps"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Envoy's own hot restart test (test/integration/hotrestart_test.sh,
// run_testsuite) against fakeenvoy, through each bootstrap it builds and
// once more with a domain socket on a path: epoch 0 with a dynamic base
// id; the listener ports rewritten into the bootstrap from /listeners (its
// tools/socket_passing); SIGUSR1 and SIGHUP survived; the hot restart
// version agreed on by CLI and admin; epoch 1 accumulating epoch 0's
// gauges after a stats flush; epoch 2 making epoch 1 terminate epoch 0,
// then terminating epoch 1; server.hot_restart_generation 1, 2, 3 and
// kept after the parents exit, while every other gauge drops the parents'
// share; the listener addresses unchanged throughout.
//
// Envoy's test reads a gauge its test binary adds (hotrestart_test_gauge,
// 1 in every epoch); here an idle keep-alive connection held open on each
// epoch makes http.router.downstream_cx_active 1 in every epoch, with the
// same arithmetic.
func TestEnvoysHotRestartTest(t *testing.T) {
	type run struct {
		variant    envoybootstraps.Variant
		socketPath bool // --socket-path in the sandbox, --socket-mode 600
	}
	var runs []run
	for _, v := range envoybootstraps.Variants() {
		if !v.IOURing { // fakeenvoy has no io_uring: one run of each serves
			runs = append(runs, run{variant: v})
		}
	}
	runs = append(runs, run{variant: envoybootstraps.Variants()[0], socketPath: true})
	for _, r := range runs {
		name := r.variant.Name
		if r.socketPath {
			name += "_socket_path"
		}
		t.Run(name, func(t *testing.T) {
			sb := newSandbox(t)
			require.NoError(t, os.MkdirAll(sb.Path("sockets"), 0o755))
			doc, err := r.variant.Render(sb.Path("tmp"), sb.Path("sockets"))
			require.NoError(t, err)
			config := sb.Path("hot_restart.yaml")
			require.NoError(t, os.WriteFile(config, doc, 0o644))
			common := []string{"--service-cluster", "cluster", "--service-node", "node", "--fake-stats-flush-interval", "50ms"}
			if r.socketPath {
				common = append(common, "--socket-path", sb.Path("sockets/envoy_domain_socket"), "--socket-mode", "600")
			}
			epoch := func(n int, config string, args ...string) (*proctest.Proc, string) {
				adminPath := sb.Path(fmt.Sprintf("admin.%d.address", n))
				all := append([]string{"-c", config, "--restart-epoch", strconv.Itoa(n), "--admin-address-path", adminPath}, common...)
				p := sb.startRaw(append(all, args...)...)
				p.WaitLine(startedLine, 1, wait)
				b, err := os.ReadFile(adminPath)
				require.NoError(t, err)
				return p, string(b)
			}

			e0, admin0 := epoch(0, config, "--use-dynamic-base-id", "--base-id-path", sb.Path("base-id"))
			baseID, err := os.ReadFile(sb.Path("base-id"))
			require.NoError(t, err)
			updated := sb.Path("hot_restart_updated.yaml")
			require.NoError(t, os.WriteFile(updated, socketPassing(t, doc, admin0), 0o644))

			// SIGUSR1 reopens logs and SIGHUP is eaten: epoch 0 lives on.
			e0.Signal(syscall.SIGUSR1)
			e0.Signal(syscall.SIGHUP)
			e0.WaitLine("caught and eating SIGHUP", 1, wait)
			assert.True(t, e0.Alive())

			cli, err := exec.Command(sb.fakeenvoy, "--hot-restart-version", "--base-id", string(baseID)).CombinedOutput()
			require.NoError(t, err, "%s", cli)
			_, adminVersion := get(t, "http://"+admin0+"/hot_restart_version")
			assert.Equal(t, strings.TrimSpace(string(cli)), adminVersion)

			assert.Equal(t, uint64(1), stat(t, admin0, "server.hot_restart_generation"))
			assert.Equal(t, uint64(1), stat(t, admin0, "server.live"))
			before := listeners(t, admin0)
			idle0 := holdIdleConnectionOn(t, before[0].LocalAddress, "0")
			waitStat(t, admin0, "http.router.downstream_cx_active", 1)
			// A stats flush of epoch 0's has counted it: epoch 1 will see it.
			waitStat(t, admin0, "server.total_connections", 1)

			e1, admin1 := epoch(1, updated, "--base-id", string(baseID))
			idle1 := holdIdleConnectionOn(t, before[0].LocalAddress, "1")
			// After a stats flush: epoch 1's own connection plus epoch 0's.
			waitStat(t, admin1, "http.router.downstream_cx_active", 2)
			// As in Envoy, the parent's connections count twice in the
			// total: in the child's own part (its connections plus the
			// parent's) and in the parent's accumulated total.
			waitStat(t, admin1, "server.total_connections", 3)
			assert.Equal(t, uint64(1), stat(t, admin1, "server.parent_connections"))
			assert.Equal(t, uint64(1), stat(t, admin1, "server.live"))
			assert.Equal(t, before, listeners(t, admin1), "listener addresses have not changed")
			e1.Signal(syscall.SIGUSR1)
			e1.WaitLine("caught SIGUSR1", 1, wait)
			assert.Equal(t, uint64(2), stat(t, admin1, "server.hot_restart_generation"))

			e2, admin2 := epoch(2, updated, "--base-id", string(baseID), "--fake-parent-shutdown-time", "300ms")
			idle2 := holdIdleConnectionOn(t, before[0].LocalAddress, "2")
			// Epoch 1 terminates epoch 0 when epoch 2 asks for its admin;
			// epoch 2 terminates epoch 1 after its parent shutdown time.
			assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
			assert.Equal(t, proctest.Exit{}, e1.Wait(wait))
			idle0.closed(t)
			idle1.closed(t)

			// The generation keeps the parents' share; every other gauge
			// drops it once they are gone.
			assert.Equal(t, uint64(3), stat(t, admin2, "server.hot_restart_generation"))
			waitStat(t, admin2, "http.router.downstream_cx_active", 1)
			waitStat(t, admin2, "server.total_connections", 1)
			assert.Equal(t, uint64(0), stat(t, admin2, "server.parent_connections"))
			assert.Equal(t, before, listeners(t, admin2), "listener addresses have not changed")

			e2.Signal(syscall.SIGTERM)
			assert.Equal(t, proctest.Exit{}, e2.Wait(wait))
			idle2.closed(t)
		})
	}
}

// socketPassing is Envoy's tools/socket_passing: the bootstrap with each
// listener's port 0 replaced by the port the running epoch bound, in the
// order /listeners reports them.
func socketPassing(t *testing.T, doc []byte, admin string) []byte {
	t.Helper()
	out := string(doc)
	from := 0
	for _, l := range listeners(t, admin) {
		for _, a := range append([]protoAddress{l.LocalAddress}, l.Additional...) {
			if a.SocketAddress == nil {
				continue
			}
			i := strings.Index(out[from:], "port_value: 0\n")
			require.GreaterOrEqual(t, i, 0, "a port 0 for %s", a.yaml())
			at := from + i
			repl := fmt.Sprintf("port_value: %d\n", a.SocketAddress.PortValue)
			out = out[:at] + repl + out[at+len("port_value: 0\n"):]
			from = at + len(repl)
		}
	}
	return []byte(out)
}

// stat reads one stat from /stats?filter=.
func stat(t *testing.T, admin, name string) uint64 {
	t.Helper()
	code, body := get(t, "http://"+admin+"/stats?filter=^"+strings.ReplaceAll(name, ".", `\.`)+"$")
	require.Equal(t, http.StatusOK, code)
	v, ok := strings.CutPrefix(strings.TrimSpace(body), name+": ")
	require.True(t, ok, "/stats has %s: %q", name, body)
	n, err := strconv.ParseUint(v, 10, 64)
	require.NoError(t, err)
	return n
}

// waitStat waits for a stat to read want, as Envoy's test's wait_for_stat:
// gauges merged from a parent move at stats flushes.
func waitStat(t *testing.T, admin, name string, want uint64) {
	t.Helper()
	proctest.WaitFor(t, wait, fmt.Sprintf("%s = %d", name, want), func() bool {
		return stat(t, admin, name) == want
	})
}

// idleConnection is a keep-alive connection that made one request and is
// held open.
type idleConnection struct {
	conn  net.Conn
	epoch string // the epoch that answered
}

// holdIdleConnectionOn makes connections until the epoch answers one: the
// old epoch logs its drain and then stops accepting, so a connection made
// in between is still its own, in Envoy too. The others are closed.
func holdIdleConnectionOn(t *testing.T, a protoAddress, epoch string) *idleConnection {
	t.Helper()
	var held *idleConnection
	proctest.WaitFor(t, wait, "a connection answered by epoch "+epoch, func() bool {
		c := holdIdleConnection(t, a)
		if c.epoch != epoch {
			c.conn.Close()
			return false
		}
		held = c
		return true
	})
	return held
}

func holdIdleConnection(t *testing.T, a protoAddress) *idleConnection {
	t.Helper()
	conn, resp, _ := getOn(t, a, "integration")
	return &idleConnection{conn: conn, epoch: resp.Header.Get("x-fakeenvoy-epoch")}
}

// closed waits for the epoch that held the connection to close it.
func (c *idleConnection) closed(t *testing.T) {
	t.Helper()
	require.NoError(t, c.conn.SetReadDeadline(time.Now().Add(wait)))
	_, err := c.conn.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the epoch closed its connection as it exited")
}
