package options

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func version(enabled bool) string {
	if enabled {
		return "11.104"
	}
	return "disabled"
}

func TestDefaultsAreEnvoys(t *testing.T) {
	o, err := Parse(nil, version)
	require.NoError(t, err)
	want := &Options{
		DrainTime: 600 * time.Second, ParentShutdownTime: 900 * time.Second, DrainStrategy: "gradual",
		SocketPath: "@envoy_domain_socket", SocketMode: 0, Mode: "serve", LogLevel: "info",
		Concurrency: hardwareConcurrency(), FileFlushInterval: 10 * time.Second, FileFlushMinSize: 64 * 1024,
		FakeHotRestartRetryDelay: time.Second, FakeLiveGap: DefaultLiveGap,
	}
	assert.Positive(t, o.Concurrency)
	assert.Empty(t, cmp.Diff(want, o, cmpopts.IgnoreUnexported(Options{})))
}

func TestParseAcceptsEnvoysSpellings(t *testing.T) {
	o, err := Parse([]string{
		"-c", "/etc/envoy.yaml", "--restart-epoch", "3", "--base-id=7", "--drain-time-s", "2",
		"--parent-shutdown-time-s=15", "--socket-path", "/tmp/hr", "--socket-mode", "644",
		"--drain-strategy", "immediate", "--mode", "init_only", "--skip-hot-restart-on-no-parent",
		"--fake-ready-delay", "250ms", "--fake-ignore-sigterm", "--service-node", "n1", "--fake-config-load-delay=2s",
		"--skip-hot-restart-parent-stats", "--admin-address-path", "/tmp/admin",
		"--concurrency", "0", "--file-flush-interval-msec", "250", "--file-flush-min-size-kb=1",
	}, version)
	require.NoError(t, err)
	assert.Equal(t, uint32(1), o.Concurrency, "at least one worker, as Envoy's max(1, concurrency)")
	assert.Equal(t, 250*time.Millisecond, o.FileFlushInterval)
	assert.Equal(t, 1024, o.FileFlushMinSize)
	assert.Equal(t, "/etc/envoy.yaml", o.ConfigPath)
	assert.Equal(t, uint32(3), o.RestartEpoch)
	assert.Equal(t, uint32(7), o.BaseID)
	assert.Equal(t, 2*time.Second, o.DrainTime)
	assert.Equal(t, 15*time.Second, o.ParentShutdownTime)
	assert.True(t, o.SkipHotRestartParentStats)
	assert.Equal(t, "/tmp/admin", o.AdminAddressPath)
	assert.Equal(t, uint32(0o644), o.SocketMode)
	assert.Equal(t, "immediate", o.DrainStrategy)
	assert.Equal(t, "init_only", o.Mode)
	assert.True(t, o.SkipHotRestartOnNoParent)
	assert.Equal(t, 250*time.Millisecond, o.FakeReadyDelay)
	assert.Equal(t, 2*time.Second, o.FakeConfigLoadDelay)
	assert.True(t, o.FakeIgnoreSIGTERM)
	assert.Equal(t, "n1", o.ServiceNode)
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--use-dynamic-base-id", "--restart-epoch", "1"}, 1, "error: cannot use --restart-epoch=1 with --use-dynamic-base-id"},
		{[]string{"--mode", "bogus"}, 1, "error: unknown mode 'bogus'"},
		{[]string{"--drain-strategy", "slow"}, 1, "error: unknown drain-strategy 'slow'"},
		{[]string{"--socket-path", "/tmp/x", "--socket-mode", "9"}, 1, "error: invalid socket-mode '9'"},
		{[]string{"--restart-epoch", "x"}, 1, "PARSE ERROR: Argument: --restart-epoch\n             Couldn't read argument value from string 'x'"},
		{[]string{"--drain-time-s", "-1"}, 1, "PARSE ERROR: Argument: --drain-time-s"},
		{[]string{"--drain-time-s", "0.1"}, 1, "PARSE ERROR: Argument: --drain-time-s\n             Couldn't read argument value from string '0.1'"},
		{[]string{"--parent-shutdown-time-s", "1.5"}, 1, "PARSE ERROR: Argument: --parent-shutdown-time-s"},
		{[]string{"--fake-stats-flush-interval", "0s"}, 1, "error: --fake-stats-flush-interval must be positive"},
		{[]string{"--base-id"}, 1, "PARSE ERROR: Argument: --base-id\n             Missing a value"},
		{[]string{"--bogus"}, 1, "PARSE ERROR: Argument: --bogus\n             Couldn't find match for argument"},
		{[]string{"--hot-restart-version"}, 0, "11.104"},
		{[]string{"--hot-restart-version", "--disable-hot-restart"}, 0, "disabled"},
	} {
		_, err := Parse(tc.args, version)
		var exit *ExitError
		require.True(t, errors.As(err, &exit), "%v: %v", tc.args, err)
		assert.Equal(t, tc.code, exit.Code, "%v", tc.args)
		assert.Contains(t, exit.Message, tc.msg, "%v", tc.args)
	}
}

func TestDynamicBaseIDAtEpochZeroIsFine(t *testing.T) {
	o, err := Parse([]string{"--use-dynamic-base-id", "--restart-epoch", "0", "--base-id-path", "/tmp/b"}, version)
	require.NoError(t, err)
	assert.True(t, o.UseDynamicBaseID)
}

// Envoy takes whole seconds; sub-second times are fakeenvoy's own flags.
// Of a flag and its stand-in, the later wins, so a start script can give
// defaults that a scenario's own arguments override.
func TestFakeTimeOverrides(t *testing.T) {
	o, err := Parse([]string{"--drain-time-s", "5", "--fake-drain-time", "100ms",
		"--fake-parent-shutdown-time=250ms", "--parent-shutdown-time-s", "9",
		"--fake-stats-flush-interval", "20ms", "--fake-live-gap", "0s"}, version)
	require.NoError(t, err)
	assert.Equal(t, 100*time.Millisecond, o.DrainTime)
	assert.Equal(t, 9*time.Second, o.ParentShutdownTime)
	assert.Equal(t, 20*time.Millisecond, o.FakeStatsFlushInterval)
	assert.Equal(t, time.Duration(0), o.FakeLiveGap)
}

// Envoy's default --concurrency is std::thread::hardware_concurrency(),
// the CPUs online.
func TestCountCPUList(t *testing.T) {
	for list, want := range map[string]uint32{"0": 1, "0-3": 4, "0-3,6,8-9": 7, "": 0, "3-1": 0, "x": 0} {
		assert.Equal(t, want, countCPUList(list), "%q", list)
	}
}
