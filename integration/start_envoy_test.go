package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

// Scenario 12: examples/start_envoy.sh runs unchanged, ulimit and sysctl
// lines included, with fakeenvoy standing in for envoy on PATH.
func TestExampleStartEnvoyScriptRunsUnchanged(t *testing.T) {
	t.Parallel()
	// Given the operator's script as shipped, envoy on PATH (a symlink to
	// fakeenvoy), the config in ENVOY_CONFIG and a dynamic base id file,
	sb := newSandbox(t, "")
	script, env := sb.startEnvoyScript()
	baseIDPath := sb.Path("base-id")
	watches, err := os.ReadFile("/proc/sys/fs/inotify/max_user_watches")
	require.NoError(t, err)
	env = append(env,
		"ENVOY_BASE_ID_PATH="+baseIDPath,
		// The sysctl line runs, asking for what the host has: a test must
		// not raise a host-wide limit.
		"ENVOY_INOTIFY_MAX_USER_WATCHES="+strings.TrimSpace(string(watches)),
	)
	r := proctest.Start(t, proctest.Options{Dir: sb.Dir, Env: env}, proctest.Binary(t, "restarter"),
		script, "--fake-drain-time", drainTime.String(), "--fake-parent-shutdown-time", parentShutdownTime.String())
	sb.restarter = r

	// when the restarter starts it, then envoy runs as epoch 0 with the
	// script's flags, a dynamic base id, and the open files limit raised
	// (or the script's warning where that is not permitted),
	e0, info0 := waitServing(t, sb, 0)
	require.Equal(t, "cluster", info0.Options.ServiceCluster)
	require.Equal(t, "node", info0.Options.ServiceNode)
	require.Equal(t, "zone", info0.Options.ServiceZone)
	id := readBaseID(t, baseIDPath)
	require.Equal(t, id, info0.Options.BaseID)
	if len(r.Lines(`^start_envoy.sh: warning: cannot raise the open files limit`)) == 0 {
		require.Equal(t, "102400", openFilesLimit(t, e0.PID))
	}
	require.Empty(t, r.Lines(`^start_envoy.sh: warning: cannot raise fs.inotify`))

	// and when it is hot restarted, epoch 1 runs with the id from the file
	// and takes over; epoch 0 exits 0,
	r.Signal(syscall.SIGHUP)
	_, info1 := waitServing(t, sb, 1)
	require.Equal(t, id, info1.Options.BaseID)
	require.Equal(t, "exited with code=0", sb.waitReaped(e0))

	// and SIGTERM ends it all, exit 0.
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	sb.requireAllGone()
}

// startEnvoyScript prepares the sandbox to run examples/start_envoy.sh as
// shipped: envoy on PATH is a symlink to fakeenvoy and ENVOY_CONFIG the
// sandbox's config. It returns the script and that environment, and
// removes, when the test ends, the region of the base id written to the
// sandbox's base-id file.
func (sb *sandbox) startEnvoyScript() (script string, env []string) {
	sb.t.Helper()
	script = proctest.Runfile(sb.t, "START_ENVOY_SH", "../examples/start_envoy.sh")
	bin := sb.Path("bin")
	require.NoError(sb.t, os.Mkdir(bin, 0o755))
	require.NoError(sb.t, os.Symlink(sb.fakeenvoy, filepath.Join(bin, "envoy")))
	return script, []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "ENVOY_CONFIG=" + sb.config}
}

// serverInfo is the part of fakeenvoy's (and Envoy's) /server_info the
// scenario reads.
type serverInfo struct {
	State   string `json:"state"`
	Options struct {
		RestartEpoch   int    `json:"restart_epoch"`
		BaseID         uint32 `json:"base_id"`
		ServiceCluster string `json:"service_cluster"`
		ServiceNode    string `json:"service_node"`
		ServiceZone    string `json:"service_zone"`
	} `json:"command_line_options"`
}

// waitServing waits for epoch n to run its dispatch loop and answer on the
// listener, and returns its /server_info, found through the admin address
// it logs (the script gives no state file).
func waitServing(t *testing.T, sb *sandbox, n int) (epoch, serverInfo) {
	t.Helper()
	e := sb.waitForked(n)
	admin := sb.restarter.WaitLine(epochLine(e.PID, `admin address: (\S+)$`), 1, wait)[1]
	sb.restarter.WaitLine(epochLine(e.PID, startedRE), 1, wait)
	var info serverInfo
	require.NoError(t, json.Unmarshal([]byte(httpGet(t, "http://"+admin+"/server_info")), &info))
	require.Equal(t, "LIVE", info.State)
	require.Equal(t, n, info.Options.RestartEpoch)
	proctest.WaitFor(t, wait, "epoch "+strconv.Itoa(n)+" to answer on the listener", func() bool {
		_, body := httpStatus(t, "http://"+sb.addr()+"/")
		return strings.Contains(body, "fakeenvoy epoch="+strconv.Itoa(n)+" ")
	})
	return e, info
}

// openFilesLimit returns the soft "Max open files" limit of pid.
func openFilesLimit(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^Max open files\s+(\S+)`).FindSubmatch(b)
	require.NotNil(t, m, "%s", b)
	return string(m[1])
}
