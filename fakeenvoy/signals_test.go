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

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/hotrestart"
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

// Given a running epoch logging to files, when the access log and the log
// are moved and SIGUSR1 arrives, then both are reopened and no access log
// line is lost or duplicated across the two files.
func TestSIGUSR1ReopensLogsWithoutLosingLines(t *testing.T) {
	sb := newSandbox(t)
	logPath := sb.Path("envoy.log")
	e0 := sb.start(0, "-c", sb.config("c.yaml", 0), "--log-path", logPath, "--fake-state-path", sb.Path("s.json"))
	st := readState(t, sb.Path("s.json"), 0)
	url := "http://" + st.Listeners["web"] + "/"

	l := fakeenvoytest.StartLoad(t, st.Listeners["web"], 4)
	proctest.WaitFor(t, wait, "load", func() bool { return len(l.Answered()) > 30 })
	require.NoError(t, os.Rename(sb.Path("access.log"), sb.Path("access.log.1")))
	require.NoError(t, os.Rename(logPath, logPath+".1"))
	e0.Signal(syscall.SIGUSR1)
	// The message goes to the old file, then the files are reopened.
	proctest.WaitFor(t, wait, "the reopened logs", func() bool {
		_, errLog := os.Stat(logPath)
		_, errAccess := os.Stat(sb.Path("access.log"))
		return errLog == nil && errAccess == nil
	})
	before := len(l.Answered())
	proctest.WaitFor(t, wait, "load after reopen", func() bool { return len(l.Answered()) > before+30 })
	l.Finish()
	assert.Empty(t, l.Failed())
	code, _ := do(t, http.MethodGet, url, "last")
	assert.Equal(t, 200, code)

	e0.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
	assertAccessLogOnce(t, []string{sb.Path("access.log.1"), sb.Path("access.log")}, len(l.Answered())+1)
	old, err := os.ReadFile(logPath + ".1")
	require.NoError(t, err)
	assert.Contains(t, string(old), "caught SIGUSR1. Reopening access logs.")
	current, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Contains(t, string(current), "exiting")
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

// With --socket-path the domain sockets are files under that path (mode
// from --socket-mode) and are removed on a clean exit.
func TestPathSocketsAreRemovedOnExit(t *testing.T) {
	sb := newSandbox(t)
	prefix := filepath.Join(sb.Dir, "hr")
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRunning(0, "-c", cfg, "--socket-path", prefix, "--socket-mode", "640")
	child := prefix + "_child_" + strconv.FormatUint(uint64(sb.BaseID)*10, 10)
	fi, err := os.Stat(child)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm())

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
