package integration

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

// Issue 22, item 1: with the restarter's output a FIFO nobody reads, the
// epochs' output (300 kB each, more than any pipe holds) goes through the
// relay and blocks no epoch: a hot restart completes and a stop ends. The
// reader that resumes gets whole lines and the dropped-lines report.
func TestStalledLogReaderBlocksNoEpoch(t *testing.T) {
	t.Parallel()
	sb := newSafeSandbox(t, `yes "epoch $RESTART_EPOCH filler line" | head -n 15000 >&2
fakeenvoy --base-id "$BASE_ID"
`)
	fifo := sb.Path("log.fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	reader, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0) // there, not reading
	require.NoError(t, err)
	t.Cleanup(func() { reader.Close() })
	out, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	require.NoError(t, err)
	cmd := exec.Command(proctest.Binary(t, "restarter"), "--control-socket", sb.sock, "--ready-url", sb.readyURL(), "--term-wait", "10s", sb.script)
	cmd.Dir, cmd.Stdout, cmd.Stderr = sb.Dir, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	out.Close()
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })

	// Given epoch 0 serving behind the stalled reader,
	live := func(epoch int) func() bool {
		return func() bool {
			code, out := runRestarter(t, "status", "--json", "--control-socket", sb.sock)
			return code == 0 && strings.Contains(out, `"epoch": `+strconv.Itoa(epoch)+`,`) && strings.Contains(out, `"state": "live"`) &&
				(epoch == 0 || strings.Contains(out, `"outcome": "ok"`))
		}
	}
	proctest.WaitFor(t, wait, "epoch 0 live", live(0))

	// a hot restart completes,
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	proctest.WaitFor(t, wait, "epoch 1 live, its restart ok", live(1))
	require.Contains(t, httpGet(t, "http://"+sb.addr()+"/"), "fakeenvoy epoch=1")

	// and a stop ends, the reader resuming meanwhile;
	var got strings.Builder
	read := make(chan struct{})
	go func() {
		defer close(read)
		syscall.SetNonblock(int(reader.Fd()), false)
		io.Copy(&got, reader)
	}()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-exited:
		require.NoError(t, waitErr)
	case <-time.After(wait):
		t.Fatal("the restarter did not exit")
	}
	<-read

	// it got whole lines, and the report of the lines dropped.
	require.Regexp(t, `(?m)\]\[warning\]\[restarter\] dropped \d+ line\(s\) of the epochs' output: the log reader was not reading$`, got.String())
	for _, line := range strings.Split(strings.TrimSpace(got.String()), "\n") {
		if strings.Contains(line, "filler") {
			require.Regexp(t, `^epoch [01] filler line$`, line, "a relayed line cut or mixed")
		}
	}
}
