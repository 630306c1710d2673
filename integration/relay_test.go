package integration

import (
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Issue 22, item 2: a hot restart into an Envoy of another hot restart
// version fails, and the reason in reload's answer, the status and the log
// quotes Envoy's own last critical line; with --on-failed-restart keep the
// old epoch serves on.
func TestFailedHotRestartQuotesEnvoysLastError(t *testing.T) {
	t.Parallel()
	sb := newSafeSandbox(t, `if [ "$RESTART_EPOCH" -gt 0 ] && [ -e "$DIR/upgrade" ]; then
	fakeenvoy --base-id "$BASE_ID" --fake-hot-restart-version 12
fi
fakeenvoy --base-id "$BASE_ID"
`)
	r := sb.start("--log-relay", "always", "--on-failed-restart", "keep", "--control-socket", sb.sock)
	e0, _ := sb.waitLive(0)
	require.NoError(t, os.WriteFile(sb.Path("upgrade"), nil, 0o644))

	code, out := sb.reload()

	require.Equal(t, 1, code, out)
	require.Regexp(t, `^restarter reload: hot restart to epoch 1 failed: epoch 1 was killed with signal=6 before it was ready: "[^"]*[Vv]ersion[^"]*"\n$`, out)
	r.WaitLine(`epoch 1 \(PID=\d+\) last logged: "[^"]*[Vv]ersion`, 1, wait)
	st := sb.status()
	require.Contains(t, st.LastRestart.Reason, "before it was ready: \"")
	require.Contains(t, httpGet(t, "http://"+sb.addr()+"/"), "fakeenvoy epoch=0")
	require.True(t, proctest.Alive(e0.PID))
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
}
