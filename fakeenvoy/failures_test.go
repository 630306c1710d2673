package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// adminAddress reads the admin address from the log, available before LIVE.
func (p *proc) adminAddress() string {
	p.t.Helper()
	p.waitLog("admin address: ")
	s := p.stderr.String()
	s = s[strings.Index(s, "admin address: ")+len("admin address: "):]
	return strings.TrimSpace(s[:strings.Index(s, "\n")])
}

// Given epoch 0 still INITIALIZING, when epoch 1 starts, then epoch 1
// exits 1 with Envoy's message and epoch 0 is untouched.
func TestEpochRefusedWhileParentInitializing(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.start(0, "-c", cfg, "--fake-ready-delay", "1m")
	admin := e0.adminAddress()
	code, body := get(t, "http://"+admin+"/ready")
	assert.Equal(t, 503, code)
	assert.Equal(t, "INITIALIZING\n", body)

	e1 := sb.start(1, "-c", cfg)
	assert.Equal(t, 1, e1.exit())
	assert.Equal(t, "previous envoy process is still initializing\n", e1.stderr.String())
	assert.True(t, e0.alive())
}

// Given a child that died while initialising, when the next epoch starts,
// then it is refused too: the flag stays set (Envoy issues #726, #33446).
func TestChildDyingWhileInitializingLeavesTheFlagSet(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.start(0, "-c", cfg)
	e0.waitLog("starting main dispatch loop")
	e1 := sb.start(1, "-c", cfg, "--fake-ready-delay", "1m")
	e1.waitLog("starting main dispatch loop")
	e1.signal(syscall.SIGKILL)
	assert.Equal(t, -int(syscall.SIGKILL), e1.exit())

	e2 := sb.start(2, "-c", cfg)
	assert.Equal(t, 1, e2.exit())
	assert.Contains(t, e2.stderr.String(), "previous envoy process is still initializing")
}

// Given epoch 0 killed, when epoch 1 starts, then it retries the refused
// send ten times and aborts (SIGABRT), as Envoy's RELEASE_ASSERT does.
func TestMissingParentRetriesThenAborts(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.start(0, "-c", cfg)
	e0.waitLog("starting main dispatch loop")
	e0.signal(syscall.SIGKILL)
	e0.exit()

	e1 := sb.start(1, "-c", cfg, "--fake-hot-restart-retry-delay", "5ms")
	assert.Equal(t, -int(syscall.SIGABRT), e1.exit())
	out := e1.stderr.String()
	assert.Equal(t, 10, strings.Count(out, "hot restart sendmsg() connection refused, retrying"))
	assert.Contains(t, out, "hot restart sendmsg() failed: returned -1, errno 111")
}

// Given epoch 0 killed, when epoch 1 starts with
// --skip-hot-restart-on-no-parent, then it starts afresh and goes LIVE.
func TestMissingParentSkippedStartsAfresh(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.start(0, "-c", cfg)
	e0.waitLog("starting main dispatch loop")
	e0.signal(syscall.SIGKILL)
	e0.exit()

	e1 := sb.start(1, "-c", cfg, "--skip-hot-restart-on-no-parent", "--fake-state-path", sb.path("s.json"))
	e1.waitLog("hot restart sendmsg() connection refused, falling back to regular restart")
	readState(t, sb.path("s.json"), 1)
	e1.signal(syscall.SIGINT)
	assert.Equal(t, 0, e1.exit())
}

// Given an epoch 0 running, when another epoch 0 uses the same base id,
// then it cannot bind the domain socket: Envoy's message, exit 1.
func TestDomainSocketInUse(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.start(0, "-c", cfg)
	e0.waitLog("starting main dispatch loop")
	again := sb.start(0, "-c", cfg)
	assert.Equal(t, 1, again.exit())
	assert.Equal(t, fmt.Sprintf("unable to bind domain socket with base_id=%d, id=0, errno=98 (see --base-id option)\n", uint64(sb.baseID)*10),
		again.stderr.String())
	assert.True(t, e0.alive())
}

// Given epoch 0 of one hot restart version, when epoch 1 of another
// starts, then it aborts with Envoy's mismatch message.
func TestHotRestartVersionMismatchAborts(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.start(0, "-c", cfg)
	e0.waitLog("starting main dispatch loop")
	e1 := sb.start(1, "-c", cfg, "--fake-hot-restart-version", "99")
	assert.Equal(t, -int(syscall.SIGABRT), e1.exit())
	assert.Contains(t, e1.stderr.String(), "Hot restart version mismatch! You must have hot restarted into a not-hot-restart-compatible new version of Envoy.")
	assert.True(t, e0.alive())
}

// Dynamic base ids: written to --base-id-path as bare decimal; refused
// above epoch 0.
func TestDynamicBaseID(t *testing.T) {
	sb := newSandbox(t)
	cfg := sb.config("c.yaml", 0)
	e0 := sb.startRaw("--restart-epoch", "0", "--use-dynamic-base-id", "--base-id-path", sb.path("base-id"),
		"-c", cfg, "--fake-state-path", sb.path("s.json"))
	st := readState(t, sb.path("s.json"), 0)
	b, err := os.ReadFile(sb.path("base-id"))
	require.NoError(t, err)
	assert.Equal(t, strconv.FormatUint(uint64(st.BaseID), 10), string(b))
	dynamic := &sandbox{t: t, dir: sb.dir, baseID: st.BaseID}

	e1 := sb.startRaw("--restart-epoch", "1", "--use-dynamic-base-id", "-c", cfg)
	assert.Equal(t, 1, e1.exit())
	assert.Equal(t, "error: cannot use --restart-epoch=1 with --use-dynamic-base-id\n", e1.stderr.String())

	e0.signal(syscall.SIGTERM)
	assert.Equal(t, 0, e0.exit())
	assert.Empty(t, dynamic.leftovers())
}

// --mode validate checks the config and touches no hot restart state.
func TestValidateMode(t *testing.T) {
	sb := newSandbox(t)
	good := sb.config("good.yaml", 0)
	bad := sb.path("bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("admin: {bogus: 1}\n"), 0o644))
	base := strconv.FormatUint(uint64(sb.baseID), 10)

	out, err := exec.Command(binary, "--mode", "validate", "-c", good, "--base-id", base).CombinedOutput()
	assert.NoError(t, err)
	assert.Contains(t, string(out), "configuration '"+good+"' OK")
	out, err = exec.Command(binary, "--mode", "validate", "-c", bad, "--base-id", base).CombinedOutput()
	assert.Equal(t, 1, exitCodeOf(err))
	assert.Contains(t, string(out), "error initializing configuration '"+bad+"'")
	assert.Empty(t, sb.leftovers())
}

func TestHotRestartVersionFlag(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary, "--hot-restart-version")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run())
	assert.Equal(t, "", stdout.String())
	assert.Equal(t, "11.32\n", stderr.String())
	out, err := exec.Command(binary, "--hot-restart-version", "--disable-hot-restart").CombinedOutput()
	require.NoError(t, err)
	assert.Equal(t, "disabled\n", string(out))
	out, err = exec.Command(binary, "--no-such-flag").CombinedOutput()
	assert.Equal(t, 1, exitCodeOf(err))
	assert.Contains(t, string(out), "PARSE ERROR: Argument: --no-such-flag")
}
