package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/fakeenvoy/internal/hotrestart"
	"github.com/envoy-restarter/restarter/internal/envoybootstraps"
	"github.com/envoy-restarter/restarter/internal/envoyshm"
	"github.com/envoy-restarter/restarter/internal/fakeenvoytest"
	"github.com/envoy-restarter/restarter/internal/proctest"
)

// adminAddress reads the admin address from the log, available before LIVE.
func adminAddress(p *proctest.Proc) string {
	return p.WaitLine(`admin address: (\S+)`, 1, wait)[1]
}

// Given epoch 0 still INITIALIZING, when epoch 1 starts, then epoch 1
// exits 1 with Envoy's message and epoch 0 is untouched.
func TestEpochRefusedWhileParentInitializing(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.start(0, "-c", cfg, "--fake-ready-delay", "1m")
	admin := adminAddress(e0)
	code, body := get(t, "http://"+admin+"/ready")
	assert.Equal(t, 503, code)
	assert.Equal(t, "INITIALIZING\n", body)

	e1 := sb.start(1, "-c", cfg)
	assert.Equal(t, proctest.Exit{Code: 1}, e1.Wait(wait))
	assert.Equal(t, "previous envoy process is still initializing", e1.Output())
	assert.True(t, e0.Alive())
}

// Given a child killed while initialising, before it told its parent to
// drain, then every later hot restart is refused: the flag stays set in the
// region for good (Envoy issues #1537, #33446), and a program mapping the
// region with Envoy's layout sees it set. Only a new epoch 0 clears it.
func TestChildDyingWhileInitializingWedgesHotRestart(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRunning(0, "-c", cfg)
	e1 := sb.start(1, "-c", cfg, "--fake-ready-delay", "1m")
	e1.WaitLine("starting main dispatch loop", 1, wait)
	e1.Signal(syscall.SIGKILL)
	assert.Equal(t, proctest.Exit{Signal: syscall.SIGKILL}, e1.Wait(wait))

	for _, epoch := range []int{1, 2, 1} { // 3 would collide with epoch 0's socket id
		again := sb.start(epoch, "-c", cfg)
		assert.Equal(t, proctest.Exit{Code: 1}, again.Wait(wait), "epoch %d", epoch)
		assert.Equal(t, "previous envoy process is still initializing", again.Output(), "epoch %d", epoch)
	}
	assert.True(t, sb.initializingFlag(), "flags_ bit 0 as Envoy lays it out")
	assert.True(t, e0.Alive(), "the old epoch keeps serving")

	e0.Signal(syscall.SIGKILL)
	e0.Wait(wait)
	fresh := sb.startRunning(0, "-c", cfg)
	assert.False(t, sb.initializingFlag(), "epoch 0 recreated the region")
	fresh.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, fresh.Wait(wait))
}

// Given epoch 0 killed, when epoch 1 starts, then it retries the refused
// send ten times and aborts (SIGABRT), as Envoy's RELEASE_ASSERT does.
func TestMissingParentRetriesThenAborts(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRunning(0, "-c", cfg)
	e0.Signal(syscall.SIGKILL)
	e0.Wait(wait)

	e1 := sb.start(1, "-c", cfg, "--fake-hot-restart-retry-delay", "5ms")
	assertAbortedAfterRetries(t, e1)
}

// Given epoch 0 killed, when epoch 1 starts with
// --skip-hot-restart-on-no-parent, then it starts afresh and goes LIVE.
func TestMissingParentSkippedStartsAfresh(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRunning(0, "-c", cfg)
	e0.Signal(syscall.SIGKILL)
	e0.Wait(wait)

	e1 := sb.start(1, "-c", cfg, "--skip-hot-restart-on-no-parent", "--fake-state-path", sb.Path("s.json"))
	e1.WaitLine(regexp.QuoteMeta("hot restart sendmsg() connection refused, falling back to regular restart"), 1, wait)
	readState(t, sb.Path("s.json"), 1)
	e1.Signal(syscall.SIGINT)
	assert.Equal(t, proctest.Exit{}, e1.Wait(wait))
}

// Given an epoch 0 running, when another epoch 0 uses the same base id,
// then it cannot bind the domain socket: Envoy's message, exit 1.
func TestDomainSocketInUse(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRunning(0, "-c", cfg)
	again := sb.start(0, "-c", cfg)
	assert.Equal(t, proctest.Exit{Code: 1}, again.Wait(wait))
	assert.Equal(t, fmt.Sprintf("unable to bind domain socket with base_id=%d, id=0, errno=98 (see --base-id option)", uint64(sb.BaseID)*10),
		again.Output())
	assert.True(t, e0.Alive())
}

// Given epoch 0 of one hot restart version, when epoch 1 of another
// starts, then it aborts with Envoy's mismatch message.
func TestHotRestartVersionMismatchAborts(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRunning(0, "-c", cfg)
	e1 := sb.start(1, "-c", cfg, "--fake-hot-restart-version", "99")
	assert.Equal(t, proctest.Exit{Signal: syscall.SIGABRT}, e1.Wait(wait))
	assert.Contains(t, e1.Output(), "Hot restart version mismatch! You must have hot restarted into a not-hot-restart-compatible new version of Envoy.")
	assert.True(t, e0.Alive())
}

// Dynamic base ids: written to --base-id-path as bare decimal; refused
// above epoch 0.
func TestDynamicBaseID(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRaw("--restart-epoch", "0", "--use-dynamic-base-id", "--base-id-path", sb.Path("base-id"),
		"-c", cfg, "--fake-state-path", sb.Path("s.json"))
	st := readState(t, sb.Path("s.json"), 0)
	b, err := os.ReadFile(sb.Path("base-id"))
	require.NoError(t, err)
	assert.Equal(t, strconv.FormatUint(uint64(st.BaseID), 10), string(b))
	dynamic := &sandbox{Sandbox: &fakeenvoytest.Sandbox{Dir: sb.Dir, BaseID: st.BaseID}, t: t}

	e1 := sb.startRaw("--restart-epoch", "1", "--use-dynamic-base-id", "-c", cfg)
	assert.Equal(t, proctest.Exit{Code: 1}, e1.Wait(wait))
	assert.Equal(t, "error: cannot use --restart-epoch=1 with --use-dynamic-base-id", e1.Output())

	e0.Signal(syscall.SIGTERM)
	assert.Equal(t, proctest.Exit{}, e0.Wait(wait))
	assert.Empty(t, dynamic.leftovers())
	assert.True(t, hotrestart.RegionExists(st.BaseID), "the region stays, as Envoy's does")
}

// --mode validate checks the config and touches no hot restart state.
func TestValidateMode(t *testing.T) {
	sb := newSandbox(t)
	good := sb.config("good.yaml", 0)
	bad := sb.Path("bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("admin: {bogus: 1}\n"), 0o644))
	base := strconv.FormatUint(uint64(sb.BaseID), 10)

	ok := sb.startRaw("--mode", "validate", "-c", good, "--base-id", base)
	assert.Equal(t, proctest.Exit{}, ok.Wait(wait))
	assert.Contains(t, ok.Output(), "configuration '"+good+"' OK")
	failed := sb.startRaw("--mode", "validate", "-c", bad, "--base-id", base)
	assert.Equal(t, proctest.Exit{Code: 1}, failed.Wait(wait))
	assert.Contains(t, failed.Output(), "error initializing configuration '"+bad+"'")
	assert.Empty(t, sb.leftovers())
	assert.False(t, hotrestart.RegionExists(sb.BaseID))
}

func TestHotRestartVersionFlag(t *testing.T) {
	t.Parallel()
	binary := proctest.Binary(t, "fakeenvoy")
	// Run directly, not through proctest (which merges the streams): the
	// version must go to stderr alone, as Envoy's does.
	cmd := exec.Command(binary, "--hot-restart-version")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run())
	assert.Equal(t, "", stdout.String())
	assert.Equal(t, hotrestart.VersionString(11), stderr.String(), "no newline, as Envoy prints it")
	assert.Equal(t, fmt.Sprintf("11.%d", envoyshm.Size), stderr.String())
	disabled := proctest.Start(t, proctest.Options{}, binary, "--hot-restart-version", "--disable-hot-restart")
	require.Equal(t, proctest.Exit{}, disabled.Wait(wait))
	assert.Equal(t, "disabled", disabled.Output())
	unknown := proctest.Start(t, proctest.Options{}, binary, "--no-such-flag")
	assert.Equal(t, proctest.Exit{Code: 1}, unknown.Wait(wait))
	assert.Contains(t, unknown.Output(), "PARSE ERROR: Argument: --no-such-flag")
}

// Envoy's own integration bootstraps, templated as Envoy's hot restart test
// templates them, pass fakeenvoy's --mode validate as they pass Envoy's.
func TestValidateModeAcceptsEnvoysIntegrationBootstraps(t *testing.T) {
	sb := newSandbox(t)
	var files []string
	for _, v := range envoybootstraps.Variants() {
		doc, err := v.Render(sb.Path("tmp"), sb.Path("sockets"))
		require.NoError(t, err)
		f := sb.Path("hot_restart_" + v.Name + ".yaml")
		require.NoError(t, os.WriteFile(f, doc, 0o644))
		files = append(files, f)
	}
	example, err := filepath.Abs("../examples/fakeenvoy.yaml")
	require.NoError(t, err)
	for _, f := range append(files, example) {
		// As Envoy's test runs it: no hot restart state is touched.
		p := sb.startRaw("-c", f, "--mode", "validate", "--service-cluster", "cluster", "--service-node", "node", "--disable-hot-restart")
		assert.Equal(t, proctest.Exit{}, p.Wait(wait), "%s:\n%s", f, p.Output())
		assert.Contains(t, p.Output(), "configuration '"+f+"' OK")
	}
}
