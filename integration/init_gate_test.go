package integration

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// The scenarios of "never take a healthy Envoy down": Envoy's own
// INITIALIZING flag as the gate (on by default), --on-failed-restart keep,
// the #33446 wedge healed, and the readiness probe against an admin that
// speaks only HTTP/1.1.

// slowBody makes an epoch stay INITIALIZING for a minute while the file
// "slow" exists in the sandbox, and 20ms otherwise.
const slowBody = `if [ -e "$DIR/slow" ]; then set -- --fake-ready-delay 60s "$@"; else set -- --fake-ready-delay 20ms "$@"; fi
fakeenvoy --base-id "$BASE_ID" "$@"
`

// newestEpoch returns the epoch number of the last "forking ... at epoch N".
func newestEpoch(r *proctest.Proc) int {
	lines := r.Lines(`forking and execing new child process at epoch \d+$`)
	if len(lines) == 0 {
		return -1
	}
	n, _ := strconv.Atoi(regexp.MustCompile(`epoch (\d+)$`).FindStringSubmatch(lines[len(lines)-1])[1])
	return n
}

func TestSIGHUPStormWithNoFlags(t *testing.T) {
	t.Parallel()
	// Given the restarter with no flags at all, epochs that take a while to
	// initialize, and a load running through the listener,
	sb := newSandbox(t, `fakeenvoy --base-id "$BASE_ID" --fake-ready-delay 20ms "$@"`+"\n")
	r := sb.start()
	sb.waitLive(0)
	l := fakeenvoytest.StartLoad(t, sb.addr(), 4)

	// when 1000 SIGHUPs arrive as fast as they can be sent,
	for range 1000 {
		r.Signal(syscall.SIGHUP)
	}

	// then the init gate coalesces them: no epoch starts while another holds
	// Envoy's INITIALIZING flag, none fails, no connection is refused (an
	// epoch started right after its parent went live terminates its
	// grandparent at once, as Envoy does, with what it still held:
	// requireNoRefusedConnection),
	proctest.WaitFor(t, wait, "the newest epoch ready", func() bool {
		n := newestEpoch(r)
		return n > 0 && len(r.Lines(`epoch `+strconv.Itoa(n)+` is ready$`)) == 1
	})
	waitServed(t, l, newestEpoch(r))
	l.Finish()
	requireNoRefusedConnection(t, l)
	require.Positive(t, l.Served(0))
	require.Empty(t, r.Lines(`previous envoy process is still initializing|Due to abnormal exit|failed`))
	requireOneInitializingAtATime(t, r, 2)
	// (an epoch that has just exited is a zombie until the restarter's next
	// reap: what is guaranteed is that it is reaped)
	proctest.WaitFor(t, wait, "the restarter to reap every child that exited", func() bool {
		_, zombies := proctest.Children(r.PID())
		return zombies == 0
	})

	// and SIGTERM ends it cleanly, leaving nothing behind.
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	sb.requireAllGone()
}

func TestKeepServingWhenAHotRestartFails(t *testing.T) {
	t.Parallel()
	// Given --on-failed-restart keep, epoch 0 serving under load (and old
	// epochs given the time to lose no request),
	sb := newSafeSandboxWith(t, slowBody, losslessParentShutdownTime)
	r := sb.start("--on-failed-restart", "keep", "--control-socket", sb.sock, "--ready-timeout", "3s")
	sb.waitLive(0)
	l := fakeenvoytest.StartLoad(t, sb.addr(), 4)
	forks := 1
	attempt := func(why string) (int, string) {
		t.Helper()
		code, out := sb.reload()
		forks++
		t.Logf("%s: reload exited %d: %s", why, code, strings.TrimSpace(out))
		return code, out
	}

	// when a bad config is pushed: reload fails naming the reason,
	sb.breakConfig()
	code, out := attempt("bad config")
	require.Equal(t, 1, code)
	require.Contains(t, out, "hot restart to epoch 1 failed: epoch 1 exited with code=1 before it was ready")
	s := sb.status()
	require.Equal(t, "running", s.Phase)
	require.Equal(t, 1, s.Counters.RestartsFailed)
	require.Equal(t, "failed", s.LastRestart.Result)
	sb.fixConfig()

	// when the new epoch is SIGKILLed while it initializes,
	require.NoError(t, os.WriteFile(sb.Path("slow"), nil, 0o644))
	forks++
	pid, _, out := sb.killInitializing(forks)
	require.Contains(t, out, "hot restart to epoch 1 failed: epoch 1 was killed with signal=9 before it was ready")
	// the flag it left set is cleared (envoyproxy/envoy#33446),
	r.WaitLine(`cleared Envoy's INITIALIZING flag, left set by epoch 1 \(PID=`+strconv.Itoa(pid)+`\)`, 1, wait)

	// when the new epoch never gets ready,
	code, out = attempt("readiness timeout")
	require.Equal(t, 1, code)
	require.Contains(t, out, "hot restart to epoch 1 failed: epoch 1 not ready within --ready-timeout=3s: Envoy's INITIALIZING flag is still set")
	require.NoError(t, os.Remove(sb.Path("slow")))

	// when the start script cannot be executed,
	require.NoError(t, os.Chmod(sb.script, 0o644))
	code, out = sb.reload()
	require.Equal(t, 1, code)
	require.Contains(t, out, "hot restart to epoch 1 failed: epoch could not be started: cannot execute")
	require.NoError(t, os.Chmod(sb.script, 0o755))

	// then every time epoch 0 kept serving, and the next good reload is
	// epoch 1: the number is reused, as Envoy requires.
	code, out = attempt("good")
	require.Equal(t, 0, code, out)
	s = sb.waitIdle()
	require.Equal(t, "running", s.Phase)
	require.Equal(t, 4, s.Counters.RestartsFailed)
	require.Equal(t, 1, s.LastRestart.Epoch)
	require.Equal(t, "ok", s.LastRestart.Result)
	require.Equal(t, 1, s.Epochs[len(s.Epochs)-1].Epoch)
	l.Finish()
	require.Empty(t, l.Failed())
	require.Empty(t, r.Lines(abnormalRE))
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	sb.requireAllGone()
}

// killInitializing reloads, SIGKILLs the epoch the reload starts (the
// forks-th forked) once it initializes, and returns its pid and the
// reload's exit code and output. The kill lands once the epoch has its
// listen sockets, in its slow initialisation: killed with a request to its
// parent in flight, the parent's late reply (Envoy retries a refused send)
// could reach the epoch that retries the number, which then fails too
// (docs/DESIGN.md §3.5).
func (sb *safeSandbox) killInitializing(forks int) (int, int, string) {
	sb.t.Helper()
	type result struct {
		code int
		out  string
	}
	reloaded := make(chan result, 1)
	go func() { code, out := sb.reload(); reloaded <- result{code, out} }()
	pid := sb.restarter.WaitPID(forkedRE, forks, wait)
	sb.restarter.WaitLine(epochLine(pid, `listener 'web' on \S+ \(worker 1, from parent\)`), 1, wait)
	signal(sb.t, pid, syscall.SIGKILL)
	res := <-reloaded
	return pid, res.code, res.out
}

// The #33446 wedge: an epoch killed while initializing leaves Envoy's
// INITIALIZING flag set, and every later hot restart fails with "previous
// envoy process is still initializing" -- unless the restarter heals it.
func TestWedgeOfAnEpochKilledInitializing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		gate     string
		reloadOK bool
	}{
		{gate: "auto", reloadOK: true},
		{gate: "off", reloadOK: false},
	} {
		t.Run("init-gate="+tc.gate, func(t *testing.T) {
			t.Parallel()
			// Given epoch 1 killed in the middle of its initialisation,
			sb := newSafeSandbox(t, slowBody)
			// (--ready-url: without the gate, an epoch is otherwise live at once,
			// and a live epoch's death takes everything down)
			r := sb.start("--init-gate", tc.gate, "--on-failed-restart", "keep", "--control-socket", sb.sock, "--ready-url", sb.readyURL())
			sb.waitLive(0)
			require.NoError(t, os.WriteFile(sb.Path("slow"), nil, 0o644))
			_, code, _ := sb.killInitializing(2)
			require.Equal(t, 1, code)
			require.NoError(t, os.Remove(sb.Path("slow")))

			// when a good reload follows,
			code, out := sb.reload()

			// then it succeeds only if the flag was healed.
			if tc.reloadOK {
				require.Equal(t, 0, code, out)
				require.Len(t, r.Lines(`cleared Envoy's INITIALIZING flag`), 1)
			} else {
				require.Equal(t, 1, code, out)
				require.Contains(t, out, "hot restart to epoch 1 failed: epoch 1 exited with code=1")
				r.WaitLine(`previous envoy process is still initializing`, 1, wait)
				require.Empty(t, r.Lines(`cleared Envoy's INITIALIZING flag`))
			}
			require.Equal(t, "running", sb.status().Phase, "epoch 0 keeps serving")
			r.Signal(syscall.SIGTERM)
			require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
			sb.requireAllGone()
		})
	}
}

func TestReadyURLAgainstAnAdminThatRefusesHTTP10(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/ready", "/server_info"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			t.Parallel()
			// Given fakeenvoy's admin, which answers HTTP/1.0 with 426 and
			// HTTP/1.1 chunked, as Envoy's does,
			sb := newSafeSandbox(t, `fakeenvoy --base-id "$BASE_ID" --fake-ready-delay 100ms "$@"`+"\n")
			url := fmt.Sprintf("http://127.0.0.1:%d%s", sb.adminPort, path)
			r := sb.start("--ready-url", url, "--control-socket", sb.sock, "--ready-timeout", "20s")
			sb.waitReady(0)
			require.Equal(t, "HTTP/1.1 426 Upgrade Required", rawStatusLine(t, sb.adminPort, "GET "+path+" HTTP/1.0\r\n\r\n"))

			// when reloads ask the probe to wait for each new epoch,
			for n := 1; n <= 2; n++ {
				code, out := sb.reload()

				// then each succeeds, with the epoch LIVE.
				require.Equal(t, 0, code, out)
				require.Equal(t, "LIVE", sb.readState(n).State)
			}
			require.Empty(t, r.Lines(`not ready within`))
			r.Signal(syscall.SIGTERM)
			require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
			sb.requireAllGone()
		})
	}
}

// rawStatusLine sends request to the admin on port and returns the status
// line of the answer.
func rawStatusLine(t *testing.T, port int, request string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), wait)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
	_, err = c.Write([]byte(request))
	require.NoError(t, err)
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	return strings.TrimSpace(line)
}

// A region left in /dev/shm under the epochs' base id with INITIALIZING
// still set (an epoch killed while starting, or Envoy's --mode init_only,
// as here) is not theirs: Envoy's epoch 0 replaces it, and the gate must
// watch only the region an epoch maps. Looked up by the base id, it made
// the gate hold every hot restart behind an epoch that was not initializing.
func TestInitGateIgnoresAStaleRegion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		body string
		// ready waits until epoch n is done starting.
		ready func(sb *sandbox, n int)
	}{
		{
			// Envoy writes the base id once it has made (or opened) its region.
			name: "envoy",
			body: `fakeenvoy --base-id "$BASE_ID" --base-id-path "$ENVOY_BASE_ID_PATH" "$@"` + "\n",
			ready: func(sb *sandbox, n int) {
				sb.waitLive(n)
				sb.restarter.WaitLine(`epoch `+strconv.Itoa(n)+` is ready$`, 1, wait)
			},
		},
		{
			// A start script that writes the base id itself and runs a child
			// that is not Envoy (maps no region). It KILLs its sleep on TERM:
			// a TERM can be lost in dash's fork window, and the sleep, left
			// behind, would hold the restarter's exit for --term-wait.
			name: "not envoy",
			body: `[ "$RESTART_EPOCH" != 0 ] || printf %s "$BASE_ID" >"$ENVOY_BASE_ID_PATH"
trap 'kill -KILL $s; exit 0' TERM
sleep 1000 & s=$!
echo "not envoy: epoch $RESTART_EPOCH up"
while :; do wait $s; done
`,
			ready: func(sb *sandbox, n int) {
				sb.waitForked(n)
				sb.restarter.WaitLine(`^not envoy: epoch `+strconv.Itoa(n)+` up$`, 1, wait)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Given a stale region of the sandbox's base id, holding INITIALIZING,
			sb := newSandbox(t, tc.body)
			stale := plantStaleRegion(t, sb)

			// when the restarter (--base-id-path, the gate on by default) starts
			// epoch 0 and is hot restarted twice, each time once the newest
			// epoch is done starting,
			r := sb.start("--base-id-path", sb.Path("base-id"))
			tc.ready(sb, 0)
			for n := 1; n <= 2; n++ {
				r.Signal(syscall.SIGHUP)
				// then each restart starts its epoch at once: none is held
				// behind an epoch said to be initializing,
				line := r.WaitLine(`forking and execing new child process at epoch `+strconv.Itoa(n)+`$|is still initializing; SIGHUP queued`, 1, wait)
				require.Contains(t, line[0], "forking and execing", "hot restart to epoch %d held", n)
				tc.ready(sb, n)
			}
			require.Empty(t, r.Lines(`is still initializing|epoch [1-9]\d* is initializing|not ready within|cleared Envoy's INITIALIZING flag`))
			if tc.name == "envoy" {
				// (and epoch 0 replaced the stale region with its own.)
				require.NotEqual(t, stale, inodeOf(t, envoyshm.Path(sb.BaseID)))
			}
			r.Signal(syscall.SIGTERM)
			require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
			sb.requireAllGone()
		})
	}
}

// plantStaleRegion leaves in /dev/shm the region of the sandbox's base id
// as fakeenvoy --mode init_only leaves it (Envoy too): INITIALIZING set,
// no process mapping it. It returns the region's inode; the region is
// removed when the test ends.
func plantStaleRegion(t *testing.T, sb *sandbox) uint64 {
	t.Helper()
	path := envoyshm.Path(sb.BaseID)
	t.Cleanup(func() { os.Remove(path) })
	out, err := exec.Command(sb.fakeenvoy, "--mode", "init_only", "--restart-epoch", "0", "--base-id", strconv.FormatUint(uint64(sb.BaseID), 10),
		"--config-path", sb.config, "--socket-path", sb.SocketPath()).CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Len(t, b, envoyshm.Size)
	require.Equal(t, envoyshm.FlagInitializing, binary.LittleEndian.Uint64(b[envoyshm.OffsetFlags:])&envoyshm.FlagInitializing, "INITIALIZING left set")
	return inodeOf(t, path)
}

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Sys().(*syscall.Stat_t).Ino
}
