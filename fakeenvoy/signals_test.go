package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/hotrestart"
	"github.com/envoy-restarter/restarter/fakeenvoy/internal/sigdefault"
	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, url, "")
}

func do(t *testing.T, method, url, requestID string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	if requestID != "" {
		req.Header.Set("x-request-id", requestID)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// SIGHUP is eaten, SIGTERM exits 0 and cleans up.
func TestSIGHUPIsEatenAndSIGTERMExitsCleanly(t *testing.T) {
	sb := newSandbox(t)
	e0 := sb.startRunning(0, "-c", sb.config("c.yaml", 0))
	e0.Signal(syscall.SIGHUP)
	e0.WaitLine(regexp.QuoteMeta("caught and eating SIGHUP. See documentation for how to hot restart."), 1, wait)
	assert.True(t, e0.Alive())
	e0.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
	assert.Contains(t, e0.Output(), "caught ENVOY_SIGTERM")
	assert.True(t, strings.HasSuffix(e0.Output(), "exiting"))
	assert.Empty(t, sb.leftovers())
}

// --fake-ignore-sigterm makes a process that outlives SIGTERM; SIGINT still works.
func TestFakeIgnoreSIGTERM(t *testing.T) {
	sb := newSandbox(t)
	e0 := sb.startRunning(0, "-c", sb.config("c.yaml", 0), "--fake-ignore-sigterm")
	e0.Signal(syscall.SIGTERM)
	e0.WaitLine(regexp.QuoteMeta("ignoring SIGTERM (--fake-ignore-sigterm)"), 1, wait)
	assert.True(t, e0.Alive())
	e0.Signal(syscall.SIGINT)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
	assert.Contains(t, e0.Output(), "caught SIGINT")
}

// Given a running epoch under load, when its access log is moved and
// SIGUSR1 arrives, then the log is reopened and no access log line is lost
// or duplicated across the two files. As Envoy's flush thread does
// (source/common/access_log/access_log_manager_impl.cc flushThreadFunc),
// the lines it had taken go to the moved file, and what was still buffered
// when SIGUSR1 came lands in the new file (the flush timer is an hour
// away). Which lines the flush thread has taken is a race in Envoy too;
// the test makes it certain by holding access_log_lock_, which every write
// to disk takes: the flusher waits for it holding the first line, and the
// load's lines stay buffered until after the reopen.
func TestSIGUSR1ReopensLogsWithoutLosingLines(t *testing.T) {
	sb := newSandbox(t)
	e0 := sb.start(0, "-c", sb.config("c.yaml", 0), "--fake-state-path", sb.Path("s.json"),
		"--file-flush-interval-msec", "3600000")
	st := readState(t, sb.Path("s.json"), 0)
	url := "http://" + st.Listeners["web"] + "/"
	lock := sb.holdAccessLogLock()
	code, _ := do(t, http.MethodGet, url, "first")
	require.Equal(t, 200, code)
	proctest.WaitFor(t, wait, "the flusher waiting for access_log_lock_ with the first line", lock.waiters)

	l := fakeenvoytest.StartLoad(t, st.Listeners["web"], 4)
	proctest.WaitFor(t, wait, "load", func() bool { return len(l.Answered()) > 30 })
	require.NoError(t, os.Rename(sb.Path("access.log"), sb.Path("access.log.1")))
	e0.Signal(syscall.SIGUSR1)
	e0.WaitLine(regexp.QuoteMeta("caught SIGUSR1. Reopening access logs."), 1, wait)
	lock.Unlock()
	proctest.WaitFor(t, wait, "the reopened access log", fileHas(sb.Path("access.log"), `"`))
	before := len(l.Answered())
	proctest.WaitFor(t, wait, "load after reopen", func() bool { return len(l.Answered()) > before+30 })
	l.Finish()
	assert.Empty(t, l.Failed())
	code, _ = do(t, http.MethodGet, url, "last")
	assert.Equal(t, 200, code)

	e0.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
	assertAccessLogOnce(t, []string{sb.Path("access.log.1"), sb.Path("access.log")}, len(l.Answered())+2)
	moved, err := os.ReadFile(sb.Path("access.log.1"))
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(moved), "\n"), "only the line taken before the move was written there")
	assert.Contains(t, string(moved), `"first"`)
}

// Given an epoch logging to a file (--log-path), when the file is moved
// and SIGUSR1 arrives, then the log is reopened: what it logs from then on
// goes to the new file, and the SIGUSR1 line is in one of the two, once
// (in the new one unless the flush thread took it in the instant between
// the line and the reopen, in Envoy too).
func TestSIGUSR1ReopensTheLogPath(t *testing.T) {
	sb := newSandbox(t)
	logPath := sb.Path("envoy.log")
	e0 := sb.start(0, "-c", sb.config("c.yaml", 0), "--log-path", logPath, "--fake-state-path", sb.Path("s.json"),
		"--file-flush-interval-msec", "3600000")
	readState(t, sb.Path("s.json"), 0)
	proctest.WaitFor(t, wait, "the log's first line", fileHas(logPath, "initializing epoch 0"))
	require.NoError(t, os.Rename(logPath, logPath+".1"))
	e0.Signal(syscall.SIGUSR1)
	proctest.WaitFor(t, wait, "the reopened log", func() bool { _, err := os.Stat(logPath); return err == nil })
	e0.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))

	old, err := os.ReadFile(logPath + ".1")
	require.NoError(t, err)
	assert.Contains(t, string(old), "initializing epoch 0")
	current, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Contains(t, string(current), "exiting")
	assert.Equal(t, 1, strings.Count(string(old)+string(current), "caught SIGUSR1. Reopening access logs."))
}

// The admin endpoints answer as Envoy's do, and /quitquitquit exits 0.
func TestAdminEndpoints(t *testing.T) {
	sb := newSandbox(t)
	e0 := sb.start(0, "-c", sb.config("c.yaml", 0), "--fake-state-path", sb.Path("s.json"),
		"--fake-exec-timestamp-path", sb.Path("exec-ts"), "--service-cluster", "demo")
	st := readState(t, sb.Path("s.json"), 0)
	admin := "http://" + st.AdminAddress

	code, body := get(t, admin+"/ready")
	assert.Equal(t, 200, code)
	assert.Equal(t, "LIVE\n", body)
	_, body = get(t, admin+"/hot_restart_version")
	assert.Equal(t, hotrestart.VersionString(11), body)
	_, body = get(t, admin+"/listeners")
	assert.Equal(t, "web::"+st.Listeners["web"]+"\n", body)

	_, body = get(t, admin+"/server_info")
	var info struct {
		State              string `json:"state"`
		HotRestartVersion  string `json:"hot_restart_version"`
		PID                int    `json:"pid"`
		CommandLineOptions struct {
			RestartEpoch   uint32 `json:"restart_epoch"`
			BaseID         uint32 `json:"base_id"`
			ServiceCluster string `json:"service_cluster"`
		} `json:"command_line_options"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &info))
	assert.Equal(t, "LIVE", info.State)
	assert.Equal(t, st.PID, info.PID)
	assert.Equal(t, sb.BaseID, info.CommandLineOptions.BaseID)
	assert.Equal(t, "demo", info.CommandLineOptions.ServiceCluster)

	code, body = do(t, http.MethodGet, "http://"+st.Listeners["web"]+"/x", "id-1")
	assert.Equal(t, 200, code)
	assert.Equal(t, "hello\nfakeenvoy epoch=0 pid="+strconv.Itoa(st.PID)+"\n", body)

	ts, err := os.ReadFile(sb.Path("exec-ts"))
	require.NoError(t, err)
	_, err = strconv.ParseInt(string(ts), 10, 64)
	assert.NoError(t, err)

	code, _ = get(t, admin+"/quitquitquit")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	code, _ = do(t, http.MethodPost, admin+"/quitquitquit", "")
	assert.Equal(t, 200, code)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
	assert.Empty(t, sb.leftovers())
}

// With --socket-path the domain sockets are files under that path, with
// --socket-mode less the umask (Envoy sets the mode with fchmod before the
// bind: RpcStream::createDomainSocketAddress in
// source/server/hot_restarting_base.cc), and are removed on a clean exit.
func TestPathSocketsAreRemovedOnExit(t *testing.T) {
	sb := newSandbox(t)
	prefix := filepath.Join(sb.Dir, "hr")
	cfg := sb.config("c.yaml", 0)
	base := strconv.FormatUint(uint64(sb.BaseID), 10)
	e0 := proctest.Start(t, proctest.Options{Dir: sb.Dir}, "/bin/sh", "-c", `umask 027 && exec "$0" "$@"`, sb.fakeenvoy,
		"--restart-epoch", "0", "--base-id", base, "-c", cfg, "--socket-path", prefix, "--socket-mode", "666")
	e0.WaitLine(startedLine, 1, wait)
	for _, role := range []string{"_child_", "_parent_", "_udp_child_", "_udp_parent_"} {
		fi, err := os.Stat(prefix + role + strconv.FormatUint(uint64(sb.BaseID)*10, 10))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), "%s: 666 under umask 027", role)
	}

	e1 := sb.start(1, "-c", cfg, "--socket-path", prefix, "--fake-parent-shutdown-time", "100ms")
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
	e1.WaitLine(regexp.QuoteMeta("all dependencies initialized. starting workers"), 1, wait)
	e1.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e1.Wait(wait))
	matches, err := filepath.Glob(prefix + "_*")
	require.NoError(t, err)
	assert.Empty(t, matches)
	assert.Empty(t, sb.leftovers())
}

// Mirrors source/server/server.cc: Envoy catches SIGTERM, SIGINT, SIGUSR1
// and SIGHUP only from RunHelper on, which InstanceImpl::run builds after
// initialize() has loaded the config; until then each has its default
// action. Given an epoch loading its bootstrap (--fake-config-load-delay
// holds it there for far longer than the test takes), when one of them
// arrives, then the epoch dies by that signal, catches nothing, and leaves
// INITIALIZING set, as an Envoy would.
func TestSignalsWhileTheConfigLoadsKill(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			if sigdefault.InheritedIgnored(sig) {
				t.Skipf("this test was started with %s ignored, so fakeenvoy is, as Envoy would be", unix.SignalName(sig))
			}
			sb := newSandbox(t)
			e0 := sb.start(0, "-c", sb.config("c.yaml", 0), "--fake-config-load-delay", "1h")
			e0.WaitLine(loadingLine(0), 1, wait)
			e0.Signal(sig)
			assert.Equal(t, proctest.Exit{Signal: sig}, e0.Wait(wait))
			assert.Empty(t, e0.Lines(`caught`))
			assert.True(t, sb.initializingFlag())
		})
	}
}

// Mirrors source/server/server.cc (the config loads in initialize(), before
// RunHelper): given epoch 0 serving and epoch 1 loading its config, when
// SIGUSR1 (an operator's log rotation, forwarded to every epoch) reaches
// epoch 1, then it dies by it before it asked epoch 0 for anything: epoch 0
// keeps its admin and serves on, and INITIALIZING stays set, so every later
// hot restart is refused (the wedge of Envoy issue #33446).
func TestSIGUSR1WhileANewEpochLoadsItsConfigWedgesHotRestart(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRunning(0, "-c", cfg)
	admin := adminAddress(e0)
	e1 := sb.start(1, "-c", cfg, "--fake-config-load-delay", "1h")
	e1.WaitLine(loadingLine(1), 1, wait)
	e1.Signal(syscall.SIGUSR1)
	assert.Equal(t, proctest.Exit{Signal: syscall.SIGUSR1}, e1.Wait(wait))

	code, body := get(t, "http://"+admin+"/ready")
	assert.Equal(t, 200, code, "epoch 0 kept its admin")
	assert.Equal(t, "LIVE\n", body)
	assert.True(t, sb.initializingFlag())
	again := sb.start(1, "-c", cfg)
	assert.Equal(t, proctest.Exit{Code: 1}, again.Wait(wait))
	assert.Equal(t, "previous envoy process is still initializing", again.Output())
	e0.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
}

// Mirrors source/server/server.cc (RunHelper, built by InstanceImpl::run
// before "starting main dispatch loop") and its test, RunHelperTest in
// test/server/server_test.cc: from RunHelper on the signals are caught,
// even while the init manager still waits (--fake-ready-delay), before LIVE
// and before INITIALIZING is cleared. SIGUSR1 reopens the logs, SIGHUP is
// eaten, SIGTERM shuts down cleanly.
func TestSignalsFromRunHelperOnAreCaught(t *testing.T) {
	sb := newSandbox(t)
	e0 := sb.start(0, "-c", sb.config("c.yaml", 0), "--fake-config-load-delay", "100ms", "--fake-ready-delay", "1h")
	e0.WaitLine(regexp.QuoteMeta("starting main dispatch loop"), 1, wait)

	e0.Signal(syscall.SIGUSR1)
	e0.WaitLine(regexp.QuoteMeta("caught SIGUSR1. Reopening access logs."), 1, wait)
	e0.Signal(syscall.SIGHUP)
	e0.WaitLine(regexp.QuoteMeta("caught and eating SIGHUP. See documentation for how to hot restart."), 1, wait)
	assert.True(t, e0.Alive())
	assert.Empty(t, e0.Lines("all dependencies initialized"), "still initializing")
	assert.True(t, sb.initializingFlag())

	e0.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
	assert.Len(t, e0.Lines(regexp.QuoteMeta("caught ENVOY_SIGTERM")), 1)
	assert.Len(t, e0.Lines(regexp.QuoteMeta("caught SIGUSR1. Reopening access logs.")), 1)
}

// loadingLine is logged as an epoch starts, right before it loads its
// bootstrap (Envoy's InstanceImpl::initialize logs it first).
func loadingLine(epoch int) string {
	return `initializing epoch ` + strconv.Itoa(epoch) + ` \(`
}
