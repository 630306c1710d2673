package proctest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	portsMu sync.Mutex
	ports   = map[int]bool{}
)

// FreePort returns a loopback TCP port nobody listens on, for a listener
// that must keep its port across hot restarts (Envoy hands a listen socket
// over by address, so a port-0 listener would get a new port each epoch),
// or an admin port a readiness URL names. It is chosen below the kernel's
// ephemeral range, so that no client connection of this or another test
// takes it between the check and fakeenvoy's bind, and verified free by
// binding it; a test binary never gets the same port twice.
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
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 10000 + rand.IntN(low-10000)
		if ports[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		ports[port] = true
		return port
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return 0
}
