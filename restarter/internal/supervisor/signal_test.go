package supervisor

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
	"github.com/envoy-restarter/restarter/restarter/internal/osproc"
	"github.com/stretchr/testify/require"
)

// TestMachineSignalsAreThePlatforms checks the machine's own signal numbers
// against this platform's: the loop converts between the two by number.
func TestMachineSignalsAreThePlatforms(t *testing.T) {
	for ours, theirs := range map[machine.Signal]syscall.Signal{
		machine.SIGHUP: syscall.SIGHUP, machine.SIGINT: syscall.SIGINT, machine.SIGQUIT: syscall.SIGQUIT,
		machine.SIGABRT: syscall.SIGABRT, machine.SIGKILL: syscall.SIGKILL, machine.SIGUSR1: syscall.SIGUSR1,
		machine.SIGSEGV: syscall.SIGSEGV, machine.SIGUSR2: syscall.SIGUSR2, machine.SIGPIPE: syscall.SIGPIPE,
		machine.SIGTERM: syscall.SIGTERM, machine.SIGCHLD: syscall.SIGCHLD,
	} {
		if int(ours) != int(theirs) {
			t.Errorf("machine.%s is %d, the platform's is %d", ours, int(ours), int(theirs))
		}
		if ours.String() != osproc.SignalName(theirs) {
			t.Errorf("machine names %d %s, the platform %s", int(ours), ours, osproc.SignalName(theirs))
		}
	}
}
func TestNewOSEnv(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	env := newOSEnv()
	require.Equal(t, os.Getpid(), env.getpid())
	stop := env.afterFunc(time.Hour, func() {})
	require.True(t, stop())
	require.NoError(t, env.sdNotify("READY=1"), "without NOTIFY_SOCKET, a no-op")
}
