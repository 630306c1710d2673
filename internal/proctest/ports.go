package proctest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreePort returns a loopback TCP port nobody listens on, for a listener
// that must keep its port across hot restarts (Envoy hands a listen socket
// over by address, so a port-0 listener would get a new port each epoch),
// or an admin port a readiness URL names. It is chosen below the kernel's
// ephemeral range, so that no client connection of this or another test
// takes it between the check and fakeenvoy's bind, and verified free by
// binding it. It is reserved until the test ends by an abstract unix socket
// named after the port, which every FreePort on the host checks and holds:
// two tests, in this process or any other (parallel test binaries, Bazel's
// --runs_per_test, another checkout's tests), never get the same port.
// (integration/testlib.sh's free_port skips reserved ports too.)
func FreePort(t testing.TB) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				low = n
			}
		}
	}
	for range 1000 {
		port := 10000 + rand.IntN(low-10000)
		reservation, err := net.Listen("unix", "@fakeenvoytest-port-"+strconv.Itoa(port))
		if err != nil {
			continue // another test's
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			reservation.Close()
			continue
		}
		ln.Close()
		t.Cleanup(func() { reservation.Close() })
		return port
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return 0
}
