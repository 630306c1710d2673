package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/logging"

	"github.com/stretchr/testify/require"
)

// workDir makes a directory with an executable start.sh, a plain file, a
// subdirectory, and makes it the children's working directory (as under
// bazel run).
func workDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "start.sh"), []byte("#!/bin/sh\n"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "plain.txt"), nil, 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	t.Setenv("BUILD_WORKING_DIRECTORY", dir)
	return dir
}

func TestParse(t *testing.T) {
	dir := workDir(t)
	start := filepath.Join(dir, "start.sh")
	sh, err := filepath.Abs("/bin/sh")
	require.NoError(t, err)
	defaults := Config{Command: "start.sh", Path: start, Args: []string{}, Dir: dir, TermWait: 30 * time.Second,
		LogFormat: logging.Text, CheckTimeout: time.Minute, ReadyTimeout: time.Minute, InitGate: InitGateAuto, OnFailedRestart: FailedRestartExit, WatchDebounce: time.Second}
	with := func(change func(*Config)) Config { c := defaults; change(&c); return c }

	tests := []struct {
		args []string
		want Config
	}{
		{[]string{"start.sh"}, defaults},
		{[]string{"./start.sh", "--config", "x"}, with(func(c *Config) {
			c.Command, c.Path, c.Args = "./start.sh", "./start.sh", []string{"--config", "x"} // $0 as typed
		})},
		{[]string{"--term-wait", "5s", "--log-format=json", "--subreaper", "start.sh"}, with(func(c *Config) {
			c.TermWait, c.LogFormat, c.Subreaper = 5*time.Second, logging.JSON, true
		})},
		{[]string{"--check", "/bin/sh", "--check-arg", "-c", "--check-arg", "exit 0", "--check-timeout", "3s", "start.sh"}, with(func(c *Config) {
			c.Check, c.CheckTimeout = []string{sh, "-c", "exit 0"}, 3*time.Second
		})},
		{[]string{"--ready-cmd", "sh", "--ready-cmd-arg", "-c", "--ready-timeout", "9s", "start.sh"}, with(func(c *Config) {
			found, err := filepath.Abs(lookPath(t, "sh"))
			require.NoError(t, err)
			c.ReadyCmd, c.ReadyTimeout = []string{found, "-c"}, 9*time.Second
		})},
		{[]string{"--ready-url", "http://127.0.0.1:9901/ready", "start.sh"}, with(func(c *Config) { c.ReadyURL = "http://127.0.0.1:9901/ready" })},
		{[]string{"--memory-guard", "off", "--metrics-file", "m.prom", "--watch", "a.yaml", "--watch", "/etc/b.yaml", "--watch-debounce", "250ms", "start.sh"}, with(func(c *Config) {
			c.MemoryGuard, c.MetricsFile, c.WatchDebounce = MemoryGuardOff, filepath.Join(dir, "m.prom"), 250*time.Millisecond
			c.Watch = []string{filepath.Join(dir, "a.yaml"), "/etc/b.yaml"}
		})},
		{[]string{"--init-gate", "off", "--on-failed-restart", "keep", "start.sh"}, with(func(c *Config) { c.InitGate, c.OnFailedRestart = InitGateOff, FailedRestartKeep })},
		{[]string{"--base-id-path", "base", "--control-socket", "/run/c.sock", "--pid-file", "r.pid", "start.sh"}, with(func(c *Config) {
			// relative to the working directory under bazel run
			c.BaseIDPath, c.ControlSocket, c.PIDFile = filepath.Join(dir, "base"), "/run/c.sock", filepath.Join(dir, "r.pid")
		})},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, err := Parse(tt.args, nil)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	t.Fatalf("%s not in PATH", name)
	return ""
}

func TestParseArgsFindsCommandInPATH(t *testing.T) {
	workDir(t)
	cfg, err := Parse([]string{"sh", "-c", "true"}, nil)
	require.NoError(t, err)
	require.Equal(t, "sh", cfg.Command)
	require.True(t, filepath.IsAbs(cfg.Path), cfg.Path)
	require.Equal(t, []string{"-c", "true"}, cfg.Args)
}

func TestParseArgsUsageErrors(t *testing.T) {
	workDir(t)
	tests := []struct {
		args []string
		want string
	}{
		{nil, "missing COMMAND: the start script to run (see restarter --help)"},
		{[]string{"--bogus", "start.sh"}, "flag provided but not defined: -bogus (see restarter --help)"},
		{[]string{"--term-wait", "0s", "start.sh"}, `invalid value "0s" for flag -term-wait: must be positive`},
		{[]string{"--log-format", "xml", "start.sh"}, `invalid value "xml" for flag -log-format: must be text or json`},
		{[]string{"--check", "a", "--check", "b", "start.sh"}, "flag -check given 2 times: give the command once and its arguments with -check-arg"},
		{[]string{"--check-arg", "x", "start.sh"}, "flag -check-arg needs -check"},
		{[]string{"--ready-cmd", "a", "--ready-cmd", "b", "start.sh"}, "flag -ready-cmd given 2 times: give the command once and its arguments with -ready-cmd-arg"},
		{[]string{"--ready-cmd-arg", "x", "start.sh"}, "flag -ready-cmd-arg needs -ready-cmd"},
		{[]string{"--ready-url", "http://x/", "--ready-cmd", "sh", "start.sh"}, "flags -ready-url and -ready-cmd exclude each other"},
		{[]string{"--check-timeout", "-1s", "start.sh"}, `invalid value "-1s" for flag -check-timeout: must be positive`},
		{[]string{"--ready-timeout", "0s", "start.sh"}, `invalid value "0s" for flag -ready-timeout: must be positive`},
		{[]string{"--ready-url", "https://x/ready", "start.sh"}, `invalid value "https://x/ready" for flag -ready-url: must be an http:// URL (for anything else use --ready-cmd)`},
		{[]string{"--ready-url", "http://x:0/ready", "start.sh"}, `invalid value "http://x:0/ready" for flag -ready-url: port 0 out of range 1-65535`},
		{[]string{"--ready-url", "http://x:65536/ready", "start.sh"}, `invalid value "http://x:65536/ready" for flag -ready-url: port 65536 out of range 1-65535`},
		{[]string{"--init-gate", "on", "start.sh"}, `invalid value "on" for flag -init-gate: must be auto or off`},
		{[]string{"--memory-guard", "on", "start.sh"}, `invalid value "on" for flag -memory-guard: must be auto or off`},
		{[]string{"--watch-debounce", "0s", "start.sh"}, `invalid value "0s" for flag -watch-debounce: must be positive`},
		{[]string{"--on-failed-restart", "retry", "start.sh"}, `invalid value "retry" for flag -on-failed-restart: must be exit or keep`},
		{[]string{"missing.sh"}, `COMMAND "missing.sh": no such file`},
		{[]string{"sub"}, `COMMAND "sub": is a directory`},
		{[]string{"plain.txt"}, `COMMAND "plain.txt": not executable (permission denied)`},
		{[]string{"/dev/null"}, `COMMAND "/dev/null": not a regular file`},
		{[]string{"--check", "nocheck.sh", "start.sh"}, `flag -check: "nocheck.sh": no such file`},
		{[]string{"--ready-cmd", "sub", "start.sh"}, `flag -ready-cmd: "sub": is a directory`},
		// Issue 19, defect 3: an empty command is named as such, not as the
		// working directory it resolves to.
		{[]string{"--check", "", "start.sh"}, `invalid value "" for flag -check: empty command`},
		{[]string{"--ready-cmd", "", "start.sh"}, `invalid value "" for flag -ready-cmd: empty command`},
		{[]string{""}, `COMMAND "": empty: give the start script to run`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := Parse(tt.args, nil)
			var usage *UsageError
			require.True(t, errors.As(err, &usage), "%v is not a *UsageError", err)
			require.Equal(t, tt.want, err.Error())
		})
	}
}

func TestParseArgsHelpAndVersion(t *testing.T) {
	var out strings.Builder
	_, err := Parse([]string{"--help", "start.sh"}, &out)
	require.ErrorIs(t, err, ErrHelp)
	require.True(t, strings.HasPrefix(out.String(), "Usage: restarter [flags] COMMAND [ARG...]"), out.String())
	require.Contains(t, out.String(), "  --term-wait duration\n")
	require.Contains(t, out.String(), "(default 30s)")
	require.NotContains(t, out.String(), "  --h\n")
	_, err = Parse([]string{"--version"}, nil)
	require.ErrorIs(t, err, ErrVersion)
}

// Issue 19, defect 3: an open files limit below what the restarter needs is
// a usage error naming both figures and how to raise it.
func TestCheckOpenFilesLimit(t *testing.T) {
	require.NoError(t, CheckOpenFilesLimit(MinOpenFiles))
	require.NoError(t, CheckOpenFilesLimit(1<<20))
	err := CheckOpenFilesLimit(6)
	var usage *UsageError
	require.True(t, errors.As(err, &usage), "%v is not a *UsageError", err)
	require.EqualError(t, err, "open files limit (RLIMIT_NOFILE) is 6; the restarter needs at least 64: raise it (ulimit -n, LimitNOFILE=)")
	require.Contains(t, usageTail, "(RLIMIT_NOFILE) below "+strconv.Itoa(MinOpenFiles), "--help gives the figure")
}

func TestVersion(t *testing.T) {
	require.NotEmpty(t, Version())
	old := Build
	t.Cleanup(func() { Build = old })
	Build = "v1.2.3"
	require.Equal(t, "v1.2.3", Version())
}
