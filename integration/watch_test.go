package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
	"github.com/envoy-restarter/restarter/restarter/status"
)

// The config watch (--watch, docs/WATCH.md) end to end: real file
// operations on the config the start script passes to fakeenvoy, each
// counted in hot restarts.
//
// Counting exactly, "no restart" included, needs no sleep: the restarter
// also watches a second file, the barrier, listed after the config. The
// watch reports in order (an earlier evaluation first, and within one the
// paths in the order given), so once the restarter has logged the barrier's
// change, made after the scenario's, every change of the config before it
// has been logged and recorded too.

// watchBody is the start script's body in the watch scenarios: it says
// which config the epoch starts with (its first line, a version comment),
// then runs fakeenvoy on it.
const watchBody = `echo "start script: epoch $RESTART_EPOCH, $(head -n 1 "$CONFIG")"
` + defaultBody

// watchSandbox is a safe sandbox (a control socket for the status) whose
// restarter watches config, the file the start script gives fakeenvoy, then
// the barrier.
type watchSandbox struct {
	*safeSandbox
	config   string // the watched path, as the start script names it
	barrier  string
	barriers int // barrier changes made so far
}

// newWatchSandbox makes a watch sandbox whose start script runs fakeenvoy
// on the sandbox's envoy.yaml, written with version "v1".
func newWatchSandbox(t *testing.T) *watchSandbox {
	t.Helper()
	sb := &watchSandbox{safeSandbox: newSafeSandbox(t, watchBody)}
	sb.config = sb.sandbox.config
	sb.barrier = sb.Path("barrier")
	require.NoError(t, os.WriteFile(sb.config, []byte(sb.configText("v1")), 0o644))
	require.NoError(t, os.WriteFile(sb.barrier, []byte("barrier 0\n"), 0o644))
	return sb
}

// configText is the sandbox's bootstrap headed by "# version".
func (sb *watchSandbox) configText(version string) string {
	return "# " + version + "\n" + fakeenvoytest.Bootstrap{AdminPort: sb.adminPort, Port: sb.port, Listener: "web", Body: "hello\n", AccessLog: sb.accessLog}.YAML()
}

// startWatching runs the restarter with a control socket, watching the
// config and then the barrier, with flags, and waits for epoch 0 to be live.
func (sb *watchSandbox) startWatching(flags ...string) *proctest.Proc {
	sb.t.Helper()
	r := sb.start(append([]string{"--control-socket", sb.sock, "--watch", sb.config, "--watch", sb.barrier}, flags...)...)
	sb.waitLive(0)
	r.WaitLine(`^start script: epoch 0, # v1$`, 1, wait)
	// (and the restarter saw it done: a change while it still sees epoch 0
	// initializing is queued, and coalesced with the barrier's)
	r.WaitLine(`\]\[restarter\] epoch 0 is ready$`, 1, wait)
	return r
}

// changeBarrier changes the barrier and waits until the restarter took the
// change: by then it has taken every change of the config made before.
func (sb *watchSandbox) changeBarrier() {
	sb.t.Helper()
	sb.barriers++
	replaceFile(sb.t, sb.barrier, fmt.Sprintf("barrier %d\n", sb.barriers))
	sb.restarter.WaitLine(`watched file changed: `+regexp.QuoteMeta(sb.barrier)+`$`, sb.barriers, wait)
}

// requireWatchRestarts checks, right after a barrier change, that the
// config's changes so far asked for exactly n hot restarts, then waits for
// them (and the barrier's) to end: each went live, and the restarter forked
// one epoch for each and for nothing else.
func (sb *watchSandbox) requireWatchRestarts(n int) {
	sb.t.Helper()
	require.Len(sb.t, sb.restarter.Lines(`watched file changed: `+regexp.QuoteMeta(sb.config)+`$`), n, "changes of %s taken", sb.config)
	require.Len(sb.t, watchRecords(sb.status(), sb.config), n, "restarts asked for by %s", sb.config)

	s := sb.waitIdle()
	for _, rec := range s.Restarts {
		require.Equal(sb.t, "watch", rec.Trigger, "restart #%d", rec.ID)
		require.Equal(sb.t, status.OutcomeOK, rec.Outcome, "restart #%d", rec.ID)
	}
	require.Len(sb.t, watchRecords(s, sb.config), n)
	require.Len(sb.t, watchRecords(s, sb.barrier), sb.barriers)
	require.Len(sb.t, sb.restarter.Lines(`forking and execing new child process at epoch \d+$`), 1+n+sb.barriers, "epochs forked")
}

// watchRecords returns the restart records a change of path asked for.
func watchRecords(s status.Status, path string) []status.Restart {
	var out []status.Restart
	for _, rec := range s.Restarts {
		if rec.Trigger == "watch" && rec.WatchPath == path {
			out = append(out, rec)
		}
	}
	return out
}

// stop stops the restarter with SIGTERM: exit 0, every epoch reaped.
func (sb *watchSandbox) stop() {
	sb.t.Helper()
	sb.restarter.Signal(syscall.SIGTERM)
	require.Equal(sb.t, proctest.Exit{Code: 0}, sb.restarter.Wait(wait))
	sb.requireAllGone()
}

// replaceFile writes content to a temporary file beside path and renames
// it over path, as editors and configuration management tools save.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

// configMap is a Kubernetes ConfigMap volume as the kubelet lays it out:
// each key a symlink KEY -> ..data/KEY, ..data a symlink to the
// timestamped directory holding the files.
type configMap struct {
	t       *testing.T
	dir     string
	current string // the timestamped directory ..data points to
	updates int
}

// newConfigMap makes the volume in dir with files (key: content).
func newConfigMap(t *testing.T, dir string, files map[string]string) *configMap {
	t.Helper()
	cm := &configMap{t: t, dir: dir}
	require.NoError(t, os.Mkdir(dir, 0o755))
	cm.current = cm.writeVersion(files)
	require.NoError(t, os.Symlink(cm.current, filepath.Join(dir, "..data")))
	for key := range files {
		require.NoError(t, os.Symlink(filepath.Join("..data", key), filepath.Join(dir, key)))
	}
	return cm
}

// writeVersion writes files into a new timestamped directory and returns
// its name.
func (cm *configMap) writeVersion(files map[string]string) string {
	cm.t.Helper()
	name := fmt.Sprintf("..2026_03_01_12_00_%02d.%09d", cm.updates, 100000000+cm.updates)
	cm.updates++
	require.NoError(cm.t, os.Mkdir(filepath.Join(cm.dir, name), 0o755))
	for key, content := range files {
		require.NoError(cm.t, os.WriteFile(filepath.Join(cm.dir, name, key), []byte(content), 0o644))
	}
	return name
}

// update swaps the volume to files as the kubelet's atomic writer does: a
// new timestamped directory, a symlink ..data_tmp to it renamed over
// ..data, the old directory removed.
func (cm *configMap) update(files map[string]string) {
	cm.t.Helper()
	next := cm.writeVersion(files)
	tmp := filepath.Join(cm.dir, "..data_tmp")
	require.NoError(cm.t, os.Symlink(next, tmp))
	require.NoError(cm.t, os.Rename(tmp, filepath.Join(cm.dir, "..data")))
	require.NoError(cm.t, os.RemoveAll(filepath.Join(cm.dir, cm.current)))
	cm.current = next
}

func TestWatchConfigMapUpdateIsOneHotRestart(t *testing.T) {
	t.Parallel()
	// Given the config in a Kubernetes ConfigMap volume (envoy.yaml ->
	// ..data/envoy.yaml, ..data -> a timestamped directory), the start
	// script and the watch both naming the key's path,
	sb := newWatchSandbox(t)
	cm := newConfigMap(t, sb.Path("configmap"), map[string]string{"envoy.yaml": sb.configText("v1"), "other.yaml": "a: 1\n"})
	sb.config = filepath.Join(cm.dir, "envoy.yaml")
	sb.script = sb.writeScript("start.sh", `CONFIG=`+strconv.Quote(sb.config)+"\n"+watchBody)
	sb.startWatching("--watch-debounce", "200ms")

	// when the kubelet updates the ConfigMap with a new envoy.yaml,
	cm.update(map[string]string{"envoy.yaml": sb.configText("v2"), "other.yaml": "a: 1\n"})
	sb.changeBarrier()

	// then that is exactly one hot restart, and its epoch runs the new config;
	sb.requireWatchRestarts(1)
	sb.restarter.WaitLine(`^start script: epoch 1, # v2$`, 1, wait)

	// an update of another key only is none,
	cm.update(map[string]string{"envoy.yaml": sb.configText("v2"), "other.yaml": "a: 2\n"})
	sb.changeBarrier()
	sb.requireWatchRestarts(1)

	// and the watch followed the swap: the next update is one more.
	cm.update(map[string]string{"envoy.yaml": sb.configText("v3"), "other.yaml": "a: 2\n"})
	sb.changeBarrier()
	sb.requireWatchRestarts(2)
	sb.restarter.WaitLine(`^start script: epoch 4, # v3$`, 1, wait)
	sb.stop()
}

func TestWatchEditorRenameOverIsOneHotRestart(t *testing.T) {
	t.Parallel()
	sb := newWatchSandbox(t)
	sb.startWatching("--watch-debounce", "200ms")

	// When an editor saves the config (a temporary file renamed over it),
	replaceFile(t, sb.config, sb.configText("v2"))
	sb.changeBarrier()

	// then that is exactly one hot restart, to the new config.
	sb.requireWatchRestarts(1)
	sb.restarter.WaitLine(`^start script: epoch 1, # v2$`, 1, wait)
	sb.stop()
}

func TestWatchBurstOfWritesIsOneHotRestart(t *testing.T) {
	t.Parallel()
	// Given the default debounce (1s),
	sb := newWatchSandbox(t)
	sb.startWatching()

	// when the config is rewritten in place 30 times in a row,
	for i := 1; i <= 30; i++ {
		require.NoError(t, os.WriteFile(sb.config, []byte(sb.configText("burst "+strconv.Itoa(i))), 0o644))
	}
	sb.changeBarrier()

	// then that is exactly one hot restart, once the burst is over, to its
	// last version.
	sb.requireWatchRestarts(1)
	sb.restarter.WaitLine(`^start script: epoch 1, # burst 30$`, 1, wait)
	sb.stop()
}

func TestWatchTouchIsNoHotRestart(t *testing.T) {
	t.Parallel()
	sb := newWatchSandbox(t)
	sb.startWatching("--watch-debounce", "200ms")

	// When the config is touched and rewritten in place with the same
	// content (not truncated first: a truncated file that stays empty
	// longer than the debounce, as on a loaded machine, is a change),
	touch := exec.Command("touch", sb.config)
	out, err := touch.CombinedOutput()
	require.NoError(t, err, "%s", out)
	f, err := os.OpenFile(sb.config, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte(sb.configText("v1")), 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	sb.changeBarrier()

	// then no hot restart comes of it: only the barrier's.
	sb.requireWatchRestarts(0)
	sb.restarter.WaitLine(`^start script: epoch 1, # v1$`, 1, wait)
	sb.stop()
}

func TestWatchRemovedConfigWaitsForItsReturn(t *testing.T) {
	t.Parallel()
	sb := newWatchSandbox(t)
	sb.startWatching("--watch-debounce", "200ms")

	// When the config is removed, the restarter warns and restarts nothing
	// (an epoch started now would find no config),
	require.NoError(t, os.Remove(sb.config))
	sb.restarter.WaitLine(`\[warning\]\[restarter\] watch: `+regexp.QuoteMeta(sb.config)+` is gone; no hot restart until it is back with new content$`, 1, wait)
	require.Equal(t, "0", getEpoch(t, sb.addr()))

	// and its return with new content is exactly one hot restart, to it.
	replaceFile(t, sb.config, sb.configText("v2"))
	sb.changeBarrier()
	sb.requireWatchRestarts(1)
	sb.restarter.WaitLine(`^start script: epoch 1, # v2$`, 1, wait)
	sb.stop()
}

func TestWatchBadConfigIsRefusedAndEpochZeroServes(t *testing.T) {
	t.Parallel()
	// Given a watched config behind a validating check (the start script in
	// --mode validate) and readiness on /server_info,
	sb := newWatchSandbox(t)
	r := sb.startSafe("--watch", sb.config)
	e0, _ := sb.waitReady(0)

	// when the config is broken in place,
	sb.breakConfig()

	// then the check refuses the hot restart the change asks for,
	r.WaitLine(`watched file changed: `+regexp.QuoteMeta(sb.config)+`$`, 1, wait)
	r.WaitLine(`check refused hot restart to epoch 1: `+regexp.QuoteMeta(sb.script)+`: exit status 1$`, 1, wait)
	r.WaitLine(`check output: .*no_such_field`, 1, wait)
	s := sb.waitIdle()
	require.Empty(t, cmp.Diff([]status.EpochStatus{{Epoch: 0, PID: e0.PID, State: "live"}}, s.Epochs, ignoreClock))
	require.Empty(t, r.Lines(`forking and execing new child process at epoch 1`))
	// and epoch 0 serves on.
	require.Equal(t, "0", getEpoch(t, sb.addr()))

	// Once it is fixed, the fix is one hot restart, and the broken config
	// was exactly one refused one.
	sb.fixConfig()
	sb.waitReady(1)
	require.Equal(t, "exited with code=0", sb.waitReaped(e0))
	reason := "check failed: " + sb.script + ": exit status 1"
	want := []status.Restart{
		{ID: 1, Epoch: 1, Trigger: "watch", WatchPath: sb.config, Outcome: status.OutcomeRefused, Reason: reason},
		{ID: 2, Epoch: 1, Trigger: "watch", WatchPath: sb.config, Outcome: status.OutcomeOK},
	}
	s = sb.waitIdle()
	require.Empty(t, cmp.Diff(want, s.Restarts, ignoreClock))
	require.Equal(t, map[string]int{"ok": 1, "refused": 1}, s.Counters.Outcomes)
	require.Equal(t, 1, s.Counters.ChecksFailed)
	requireStatusJSON(t, sb.safeSandbox)
	sb.stop()
}

// getEpoch GETs / from the listener at addr on a new connection and returns
// the epoch that answered (fakeenvoy's x-fakeenvoy-epoch).
func getEpoch(t *testing.T, addr string) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: wait}
	resp, err := client.Get("http://" + addr + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp.Header.Get("x-fakeenvoy-epoch")
}

// requireStatusJSON checks that `restarter status --json` is a JSON object
// with the restart history, each failed or refused restart with its reason,
// and returns it decoded.
func requireStatusJSON(t *testing.T, sb *safeSandbox) status.Status {
	t.Helper()
	code, out := runRestarter(t, "status", "--json", "--control-socket", sb.sock, "--timeout", wait.String())
	require.Equal(t, 0, code, out)
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(out), &raw), "status --json:\n%s", out)
	require.Contains(t, raw, "restarts")
	var s status.Status
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	require.NotEmpty(t, s.Restarts, "restart history")
	for _, rec := range s.Restarts {
		if rec.Outcome == status.OutcomeFailed || rec.Outcome == status.OutcomeRefused {
			require.NotEmpty(t, rec.Reason, "restart #%d (%s) has no reason", rec.ID, rec.Outcome)
		}
	}
	return s
}
