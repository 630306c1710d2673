package integration

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Scenario 1: epoch 0 serves; SIGTERM or SIGINT ends every process, exit 0.
func TestStartServesAndSIGTERMStopsEverything(t *testing.T) {
	testStartAndStop(t, syscall.SIGTERM, "SIGTERM")
}

func TestStartServesAndSIGINTStopsEverything(t *testing.T) {
	testStartAndStop(t, syscall.SIGINT, "SIGINT")
}

func testStartAndStop(t *testing.T, sig syscall.Signal, name string) {
	t.Parallel()
	// Given a restarter running the start script,
	sb := newSandbox(t, "")
	r := sb.start()
	r.WaitLine(`starting hot-restarter with target: `+sb.script+`$`, 1, wait)
	e0, st := sb.waitLive(0)

	// epoch 0 serves the listener and its admin says LIVE at epoch 0,
	resp := httpGet(t, "http://"+sb.addr()+"/")
	require.Contains(t, resp, "hello\n")
	require.Contains(t, resp, "fakeenvoy epoch=0 pid="+strconv.Itoa(e0.PID))
	require.Equal(t, "LIVE", httpGet(t, "http://"+st.AdminAddress+"/ready"))

	// when the restarter gets the signal,
	r.Signal(sig)

	// then it passes TERM to epoch 0, which exits 0, and so does the restarter.
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	r.WaitLine(`got `+name+`$`, 1, wait)
	r.WaitLine(`sending TERM to PID=`+strconv.Itoa(e0.PID)+`$`, 1, wait)
	r.WaitLine(epochLine(e0.PID, `caught ENVOY_SIGTERM$`), 1, wait)
	require.Equal(t, "exited with code=0", sb.waitReaped(e0))
	r.WaitLine(`all children exited cleanly$`, 1, wait)
	sb.requireAllGone()
	require.Len(t, sb.forked(), 1)
	_, err := os.Stat(envoyshm.Path(sb.BaseID))
	require.NoError(t, err, "the shared memory region stays, as Envoy leaves it (the sandbox removes it)")
}

// Scenario 10: the restarter SIGKILLed leaves no fakeenvoy behind.
func TestRestarterSIGKILLedLeavesNoEpoch(t *testing.T) {
	t.Parallel()
	// Given two live epochs (the parent kept alive by a long shutdown time),
	sb := newSandbox(t, `fakeenvoy --base-id "$BASE_ID" --parent-shutdown-time-s 60`+"\n")
	r := sb.start()
	e0, _ := sb.waitLive(0)
	r.Signal(syscall.SIGHUP)
	e1, _ := sb.waitLive(1)
	require.True(t, proctest.Alive(e0.PID))

	// when the restarter is SIGKILLed (it can do nothing about it),
	r.Signal(syscall.SIGKILL)
	require.Equal(t, proctest.Exit{Signal: syscall.SIGKILL}, r.Wait(wait))

	// then both epochs die with it (Pdeathsig), without the test's clean-up.
	for _, e := range []epoch{e0, e1} {
		proctest.WaitFor(t, wait, "epoch "+strconv.Itoa(e.N)+" to die with the restarter", func() bool { return !proctest.Alive(e.PID) })
	}
}

// Scenario 11: a missing, non-executable or directory start script is a
// usage error: exit 2, one line on stderr, nothing started.
func TestBadStartScript(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "start.sh")
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\nexec sleep 1000\n"), 0o644))
	tests := []struct {
		name, command, want string
	}{
		{"missing", filepath.Join(dir, "missing.sh"), `restarter: COMMAND "` + dir + `/missing.sh": no such file`},
		{"not executable", notExec, `restarter: COMMAND "` + notExec + `": not executable (permission denied)`},
		{"directory", dir, `restarter: COMMAND "` + dir + `": is a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(proctest.Binary(t, "restarter"), tt.command)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			err := cmd.Run()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit)
			require.Equal(t, 2, exit.ExitCode())
			require.Equal(t, tt.want+"\n", stderr.String(), "one line on stderr")
			require.Empty(t, stdout.String(), "no log lines: nothing was started")
		})
	}
}

// probeClient opens a new connection for each request, as a probe of
// Envoy's admin must: a connection kept from before a hot restart is still
// the old epoch's (ShutdownAdmin closes only the listening socket), and a
// kept listener connection is the old epoch's until it drain-closes.
var probeClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// httpGet returns the body of a GET that must answer 200.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := probeClient.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", url, b)
	return strings.TrimSpace(string(b))
}

// httpStatus returns the status and trimmed body of a GET.
func httpStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := probeClient.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// A stop during the drain window: Envoy's shutdown sends its parent a
// Terminate while the parent-shutdown time has not passed. TERM to every
// epoch at once (hot-restarter.py) can kill the parent first: the newest
// epoch's Terminate is refused, retried ten times and aborts (SIGABRT).
// The restarter TERMs the newest epoch first and the older ones after.
func TestSIGTERMDuringDrainStopsNewestEpochFirst(t *testing.T) {
	t.Parallel()
	// Given epoch 1 live and epoch 0 draining (a long parent-shutdown time),
	sb := newSandbox(t, `fakeenvoy --base-id "$BASE_ID" --fake-parent-shutdown-time 60s`+"\n")
	r := sb.start()
	e0, _ := sb.waitLive(0)
	r.Signal(syscall.SIGHUP)
	e1, _ := sb.waitLive(1)
	require.True(t, proctest.Alive(e0.PID), "epoch 0 drains")

	// when the restarter gets SIGTERM,
	r.Signal(syscall.SIGTERM)

	// then it sends TERM to epoch 1 only; epoch 1 terminates its parent at
	// its own shutdown, and both exit 0, and so does the restarter.
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	require.Equal(t, "exited with code=0", sb.waitReaped(e1))
	require.Equal(t, "exited with code=0", sb.waitReaped(e0))
	terms := r.Lines(`sending TERM to PID=\d+$`)
	require.NotEmpty(t, terms)
	require.Regexp(t, `sending TERM to PID=`+strconv.Itoa(e1.PID)+`$`, terms[0], "the newest epoch is TERMed first")
	reaped1 := r.Lines(`PID=` + strconv.Itoa(e1.PID) + ` exited with code=0$`)[0]
	if len(terms) > 1 {
		// Epoch 0 was still unreaped when epoch 1 was: it got its TERM after.
		require.Regexp(t, `sending TERM to PID=`+strconv.Itoa(e0.PID)+`$`, terms[1])
		require.Less(t, strings.Index(r.Output(), reaped1), strings.Index(r.Output(), terms[1]), "epoch 0's TERM after epoch 1 was reaped")
	}
	require.Len(t, terms, len(r.Lines(`sending TERM to PID=(`+strconv.Itoa(e0.PID)+`|`+strconv.Itoa(e1.PID)+`)$`)))
	r.WaitLine(epochLine(e0.PID, `shutting down due to child request$`), 1, wait)
	require.Empty(t, r.Lines(epochLine(e1.PID, `hot restart sendmsg\(\)`)), "epoch 1 retried or aborted its Terminate")
	require.Empty(t, r.Lines(abnormalRE))
	r.WaitLine(`all children exited cleanly$`, 1, wait)
	sb.requireAllGone()
}

// A newest epoch stuck in its shutdown does not cost the older ones their
// clean exit: they get their TERM at half of --term-wait.
func TestSIGTERMStuckNewestEpochReleasesOlderAtHalfTermWait(t *testing.T) {
	t.Parallel()
	// Given epoch 1 ignoring SIGTERM (and not asking epoch 0 for stats, which
	// would abort it once epoch 0 is gone) and epoch 0 draining,
	sb := newSandbox(t, `if [ "$RESTART_EPOCH" = 1 ]; then fakeenvoy --base-id "$BASE_ID" --fake-parent-shutdown-time 60s --fake-stats-flush-interval 60s --fake-ignore-sigterm; fi
fakeenvoy --base-id "$BASE_ID" --fake-parent-shutdown-time 60s
`)
	r := sb.start("--term-wait", "2s")
	e0, _ := sb.waitLive(0)
	r.Signal(syscall.SIGHUP)
	e1, _ := sb.waitLive(1)

	// when the restarter gets SIGTERM,
	r.Signal(syscall.SIGTERM)

	// then epoch 1 gets TERM, ignores it; after half the term wait epoch 0 gets
	// its TERM and exits 0; epoch 1 is KILLed at the term wait; exit 1.
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	terms := r.Lines(`sending TERM to PID=\d+$`)
	require.Len(t, terms, 2)
	require.Regexp(t, `PID=`+strconv.Itoa(e1.PID)+`$`, terms[0])
	require.Regexp(t, `PID=`+strconv.Itoa(e0.PID)+`$`, terms[1])
	half := r.Lines(`PID=` + strconv.Itoa(e1.PID) + ` still running after half of --term-wait=2s; sending TERM to the older epochs$`)
	require.Len(t, half, 1)
	require.Less(t, strings.Index(r.Output(), half[0]), strings.Index(r.Output(), terms[1]))
	require.Equal(t, "exited with code=0", sb.waitReaped(e0))
	require.Equal(t, "was killed with signal=9", sb.waitReaped(e1))
	r.WaitLine(`children still running after --term-wait=2s$`, 1, wait)
	sb.requireAllGone()
}

// Issue 19, defect 3: an epoch that crashes during a stop is no clean stop.
// hot-restarter.py exits 0 then; the restarter logs which epoch failed and
// how, finishes the stop and exits 1.
func TestEpochCrashingDuringStopExits1(t *testing.T) {
	t.Parallel()
	// Given epoch 0 serving and ignoring SIGTERM (an Envoy stuck in its
	// shutdown),
	sb := newSandbox(t, `fakeenvoy --base-id "$BASE_ID" --fake-ignore-sigterm`+"\n")
	r := sb.start("--term-wait", "1m")
	e0, _ := sb.waitLive(0)

	// when the restarter is stopped and the epoch then crashes,
	r.Signal(syscall.SIGTERM)
	r.WaitLine(`sending TERM to PID=`+strconv.Itoa(e0.PID)+`$`, 1, wait)
	signal(t, e0.PID, syscall.SIGSEGV)

	// then the stop ends at once, with exit code 1 and the epoch named.
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	r.WaitLine(`epoch 0 \(PID=`+strconv.Itoa(e0.PID)+`\) was killed with signal=11 during the stop: the exit code will be 1$`, 1, wait)
	r.WaitLine(`all children exited; epoch 0 \(PID=`+strconv.Itoa(e0.PID)+`\) was killed with signal=11 during the stop$`, 1, wait)
	require.Empty(t, r.Lines(`all children exited cleanly$`))
	r.WaitLine(`exiting with code=1$`, 1, wait)
	sb.requireAllGone()
}

// underOpenFilesLimit is the argv that runs argv under an RLIMIT_NOFILE of
// limit (soft and hard), through sh's ulimit.
func underOpenFilesLimit(limit int, argv ...string) []string {
	return append([]string{"sh", "-c", `ulimit -n "$0" && exec "$@"`, strconv.Itoa(limit)}, argv...)
}

// Issue 19, defect 3: under an open files limit too small for it, the
// restarter (and its client) say so in one line and exit 2, instead of
// dying with "fatal error: runtime: netpollinit failed" and a goroutine
// dump.
func TestTooFewOpenFilesIsAUsageError(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	restarter := proctest.Binary(t, "restarter")
	for _, tt := range []struct {
		limit int
		args  []string
	}{
		{6, []string{"--control-socket", sb.Path("control.sock"), sb.script}},
		{63, []string{"--control-socket", sb.Path("control.sock"), sb.script}},
		{6, []string{"status", "--control-socket", sb.Path("control.sock")}},
	} {
		argv := underOpenFilesLimit(tt.limit, append([]string{restarter}, tt.args...)...)
		code, out := runCommand(t, argv[0], argv[1:]...)
		require.Equal(t, 2, code, out)
		require.Equal(t, "restarter: open files limit (RLIMIT_NOFILE) is "+strconv.Itoa(tt.limit)+
			"; the restarter needs at least 64: raise it (ulimit -n, LimitNOFILE=)\n", out)
	}
}

// Issue 19, defect 3: at the open files limit it requires (which its epochs
// inherit), the restarter runs its whole job: a control socket, a check, a
// readiness probe, a hot restart, a clean stop.
func TestRunsAtTheOpenFilesLimitItRequires(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, "")
	sock := sb.Path("control.sock")
	argv := underOpenFilesLimit(64, proctest.Binary(t, "restarter"), "--control-socket", sock,
		"--check", sb.script, "--check-arg", "--mode", "--check-arg", "validate",
		"--ready-cmd", "/bin/sh", "--ready-cmd-arg", "-c", "--ready-cmd-arg", `test -e "$0/state.$RESTART_EPOCH.json"`, "--ready-cmd-arg", sb.Dir,
		sb.script)
	r := proctest.Start(t, proctest.Options{Dir: sb.Dir}, argv[0], argv[1:]...)
	sb.restarter = r
	sb.waitLive(0)
	code, out := runRestarter(t, "reload", "--control-socket", sock, "--timeout", wait.String())
	require.Equal(t, 0, code, out)
	require.Regexp(t, `^hot restart to epoch 1: ready \(restart #1, \d+\.\d\ds\)\n$`, out)
	sb.waitLive(1)
	code, out = runRestarter(t, "status", "--control-socket", sock, "--timeout", wait.String())
	require.Equal(t, 0, code, out)
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	require.Empty(t, r.Lines(`too many open files|EMFILE`))
}
