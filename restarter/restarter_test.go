package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// childScript is a tiny stand-in for Envoy: it reports its epoch, arguments
// and directory once its signal handlers are in place, logs USR1, and exits 0
// on TERM at once, KILLing its helper (the sleep it waits on): a TERM that
// reaches the helper between dash's fork and its reset of the traps it
// inherited is taken by the shell's handler and lost, and the helper, left
// behind, would hold the restarter's exit for --term-wait.
const childScript = `trap 'echo "epoch $RESTART_EPOCH pid=$$ got USR1"' USR1
trap 'echo "epoch $RESTART_EPOCH pid=$$ got TERM"; kill -KILL $s 2>/dev/null; exit 0' TERM
sleep 1000 >/dev/null 2>&1 & s=$!
echo "child epoch=$RESTART_EPOCH pid=$$ argv0=$0 args=$* cwd=$(pwd)"
while :; do wait $s; done
`

const (
	forkedRE = `forked new child process with PID=(\d+)`
	wait     = proctest.Timeout
)

// start runs the restarter on a script with body in a fresh temp dir.
func start(t *testing.T, body string, flags ...string) (*proctest.Proc, string) {
	t.Helper()
	dir := t.TempDir()
	script := proctest.Script(t, dir, "start.sh", body)
	return proctest.Start(t, proctest.Options{Dir: dir}, proctest.Binary(t, "restarter"), append(flags, script, "--flag", "two words")...), dir
}

func TestEpochsArgsAndEnvironment(t *testing.T) {
	// Given a restarter running the start script as epoch 0,
	r, dir := start(t, childScript)
	r.WaitLine(`child epoch=0 `, 1, wait)

	// when it gets SIGHUP twice,
	for epoch := 1; epoch <= 2; epoch++ {
		r.Signal(syscall.SIGHUP)
		r.WaitLine(`child epoch=`+strconv.Itoa(epoch)+` `, 1, wait)
	}

	// then each start got the next RESTART_EPOCH, the arguments and argv[0] as given.
	want := []string{
		"child epoch=0 argv0=" + dir + "/start.sh args=--flag two words cwd=" + dir,
		"child epoch=1 argv0=" + dir + "/start.sh args=--flag two words cwd=" + dir,
		"child epoch=2 argv0=" + dir + "/start.sh args=--flag two words cwd=" + dir,
	}
	var got []string
	for _, l := range r.Lines(`^child `) {
		got = append(got, stripPID(l))
	}
	require.Empty(t, cmp.Diff(want, got))
	r.WaitLine(`forking and execing new child process at epoch 2`, 1, wait)
	r.WaitLine(forkedRE, 3, wait)
	require.Len(t, r.Lines(`got SIGHUP`), 2)

	// and SIGTERM ends every epoch and the restarter, exit 0.
	pids := forkedPIDs(r)
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	r.WaitLine(`all children exited cleanly`, 1, wait)
	for _, pid := range pids {
		r.WaitLine(`PID=`+strconv.Itoa(pid)+` exited with code=0`, 1, wait)
		require.False(t, proctest.Alive(pid), "PID %d still alive", pid)
	}
}

func TestSIGINTBehavesAsSIGTERM(t *testing.T) {
	r, _ := start(t, childScript)
	pid := r.WaitPID(forkedRE, 1, wait)
	r.WaitLine(`child epoch=0 `, 1, wait)
	r.Signal(syscall.SIGINT)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	r.WaitLine(`got SIGINT`, 1, wait)
	r.WaitLine(`sending TERM to PID=`+strconv.Itoa(pid), 1, wait)
	require.False(t, proctest.Alive(pid))
}

func TestRelativeCommandUnderBazelRun(t *testing.T) {
	// Given `bazel run //restarter -- ./start.sh` typed in dir: Bazel runs the
	// restarter elsewhere and tells it the user's directory.
	dir := t.TempDir()
	proctest.Script(t, dir, "start.sh", childScript)
	r := proctest.Start(t, proctest.Options{Env: []string{"BUILD_WORKING_DIRECTORY=" + dir}}, proctest.Binary(t, "restarter"), "./start.sh")
	line := r.WaitLine(`^child epoch=0 .*`, 1, wait)[0]
	require.Equal(t, "child epoch=0 argv0=./start.sh args= cwd="+dir, stripPID(line))
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
}

func TestSIGUSR1IsForwardedToEveryChild(t *testing.T) {
	// The stand-in is not Envoy: with the init gate on, SIGUSR1 would wait up
	// to --ready-timeout for the gate to decide so.
	r, _ := start(t, childScript, "--init-gate", "off")
	r.WaitLine(`child epoch=0 `, 1, wait)
	r.Signal(syscall.SIGHUP)
	r.WaitLine(`child epoch=1 `, 1, wait)

	r.Signal(syscall.SIGUSR1)

	r.WaitLine(`epoch 0 pid=\d+ got USR1`, 1, wait)
	r.WaitLine(`epoch 1 pid=\d+ got USR1`, 1, wait)
	r.WaitLine(forkedRE, 2, wait)
	for _, pid := range forkedPIDs(r) {
		r.WaitLine(`sending SIGUSR1 to PID=`+strconv.Itoa(pid), 1, wait)
	}
}

func TestChildIgnoringTERMIsKilledAfterTermWait(t *testing.T) {
	// Given a child that ignores SIGTERM and a term wait of 300ms,
	const termWait = 300 * time.Millisecond
	r, _ := start(t, "trap '' TERM\necho ready\nwhile :; do sleep 0.05; done\n", "--term-wait", termWait.String())
	pid := r.WaitPID(forkedRE, 1, wait)
	r.WaitLine(`^ready`, 1, wait)

	// when the restarter gets SIGTERM,
	began := time.Now()
	r.Signal(syscall.SIGTERM)
	exit := r.Wait(wait)
	elapsed := time.Since(began)

	// then it KILLs the child after the wait and exits 1.
	require.Equal(t, proctest.Exit{Code: 1}, exit)
	r.WaitLine(`force killing PID=`+strconv.Itoa(pid), 1, wait)
	r.WaitLine(`PID=`+strconv.Itoa(pid)+` was killed with signal=9`, 1, wait)
	require.GreaterOrEqual(t, elapsed, termWait)
	require.Less(t, elapsed, termWait+5*time.Second, "exit long after the term wait")
	require.False(t, proctest.Alive(pid))
}

func TestCrashOfOneEpochKillsTheOthers(t *testing.T) {
	// Given epoch 0 serving and an epoch 1 that fails on start,
	r, _ := start(t, `[ "$RESTART_EPOCH" = 1 ] && { echo "epoch 1 failing"; exit 3; }
`+childScript)
	pid0 := r.WaitPID(forkedRE, 1, wait)
	r.WaitLine(`child epoch=0 `, 1, wait)

	r.Signal(syscall.SIGHUP)

	// then the restarter KILLs epoch 0, reaps it and exits 1.
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	pid1 := r.WaitPID(forkedRE, 2, wait)
	r.WaitLine(`PID=`+strconv.Itoa(pid1)+` exited with code=3`, 1, wait)
	r.WaitLine(`Due to abnormal exit, force killing all child processes and exiting`, 1, wait)
	r.WaitLine(`force killing PID=`+strconv.Itoa(pid0), 1, wait)
	r.WaitLine(`PID=`+strconv.Itoa(pid0)+` was killed with signal=9`, 1, wait)
	require.False(t, proctest.Alive(pid0))
}

func TestEpochKilledBySignalKillsTheOthers(t *testing.T) {
	r, _ := start(t, childScript)
	r.WaitLine(`child epoch=0 `, 1, wait)
	r.Signal(syscall.SIGHUP)
	r.WaitLine(`child epoch=1 `, 1, wait)
	r.WaitLine(forkedRE, 2, wait) // the log is written off the event loop: it may trail the child's
	pids := forkedPIDs(r)

	require.NoError(t, syscall.Kill(pids[1], syscall.SIGSEGV))

	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	r.WaitLine(`PID=`+strconv.Itoa(pids[1])+` was killed with signal=11`, 1, wait)
	r.WaitLine(`PID=`+strconv.Itoa(pids[0])+` was killed with signal=9`, 1, wait)
}

func TestLastChildExitingCleanlyEndsTheRestarter(t *testing.T) {
	r, _ := start(t, "exit 0\n")
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	r.WaitLine(`exiting due to lack of child processes`, 1, wait)
}

func TestExecFailureAtLaterEpoch(t *testing.T) {
	// Given epoch 0 running,
	r, dir := start(t, childScript)
	pid0 := r.WaitPID(forkedRE, 1, wait)
	r.WaitLine(`child epoch=0 `, 1, wait)

	// when the start script stopped being executable before the hot restart,
	require.NoError(t, os.Chmod(filepath.Join(dir, "start.sh"), 0o644))
	r.Signal(syscall.SIGHUP)

	// then the failure names the path and errno, and everything is shut down.
	require.Equal(t, proctest.Exit{Code: 1}, r.Wait(wait))
	r.WaitLine(`\[error\]\[restarter\] epoch 1: cannot execute `+dir+`/start.sh: permission denied \(errno=13 EACCES\)$`, 1, wait)
	r.WaitLine(`PID=`+strconv.Itoa(pid0)+` was killed with signal=9`, 1, wait)
}

func TestSIGHUPDuringShutdownStartsNoEpoch(t *testing.T) {
	// Given a child that takes its time to exit after TERM (until a file appears),
	dir := t.TempDir()
	release := filepath.Join(dir, "release")
	r, _ := start(t, `trap 'echo "epoch $RESTART_EPOCH draining"; while [ ! -e `+release+` ]; do sleep 0.01; done; exit 0' TERM
echo "child epoch=$RESTART_EPOCH"
while :; do sleep 0.01; done
`)
	r.WaitLine(`child epoch=0`, 1, wait)
	r.Signal(syscall.SIGTERM)
	r.WaitLine(`epoch 0 draining`, 1, wait)

	// when SIGHUP arrives during the shutdown,
	r.Signal(syscall.SIGHUP)
	r.WaitLine(`ignoring SIGHUP: shutdown in progress`, 1, wait)
	require.NoError(t, os.WriteFile(release, nil, 0o644))

	// then no epoch 1 was started and the shutdown ends cleanly.
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	require.Empty(t, r.Lines(`epoch 1`))
}

func TestSignalBurst(t *testing.T) {
	// Given a restarter running epoch 0,
	r, _ := start(t, childScript)
	r.WaitLine(`child epoch=0 `, 1, wait)

	// when 200 SIGHUPs arrive as fast as they can be sent,
	for i := 0; i < 200; i++ {
		r.Signal(syscall.SIGHUP)
	}
	r.WaitLine(`got SIGHUP`, 1, wait)

	// then the restarter survives, leaves no zombie, and ends cleanly on TERM.
	proctest.WaitFor(t, wait, "no zombie children", func() bool {
		_, zombies := proctest.Children(r.PID())
		return zombies == 0
	})
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	pids := forkedPIDs(r)
	require.NotEmpty(t, pids)
	for _, pid := range pids {
		// An epoch still starting when TERM came dies of it: that is fine too.
		require.Len(t, r.Lines(`PID=`+strconv.Itoa(pid)+` (exited with code=0|was killed with signal=15)$`), 1, "PID %d reaped", pid)
		require.False(t, proctest.Alive(pid), "PID %d still alive", pid)
	}
}

func TestRestarterKilledLeavesNoChild(t *testing.T) {
	r, _ := start(t, childScript)
	r.WaitLine(`child epoch=0 `, 1, wait)
	r.Signal(syscall.SIGHUP)
	r.WaitLine(`child epoch=1 `, 1, wait)
	r.WaitLine(forkedRE, 2, wait) // the log is written off the event loop: it may trail the child's
	pids := forkedPIDs(r)

	r.Signal(syscall.SIGKILL)

	require.Equal(t, proctest.Exit{Signal: syscall.SIGKILL}, r.Wait(wait))
	for _, pid := range pids {
		proctest.WaitFor(t, wait, "PID "+strconv.Itoa(pid)+" to die with its parent", func() bool { return !proctest.Alive(pid) })
	}
}

func TestJSONLogs(t *testing.T) {
	r, _ := start(t, childScript, "--log-format", "json")
	r.WaitLine(`child epoch=0 `, 1, wait)
	r.Signal(syscall.SIGTERM)
	require.Equal(t, proctest.Exit{Code: 0}, r.Wait(wait))
	line := r.WaitLine(`^\{.*forked new child process.*$`, 1, wait)[0]
	var rec struct {
		Level, Msg, Component string
		PID, Epoch            int
	}
	require.NoError(t, json.Unmarshal([]byte(line), &rec))
	require.Equal(t, "INFO", rec.Level)
	require.Equal(t, "restarter", rec.Component)
	require.Equal(t, 0, rec.Epoch)
	require.Equal(t, "forked new child process with PID="+strconv.Itoa(rec.PID), rec.Msg)
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-exec.sh")
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644))
	script := proctest.Script(t, dir, "ok.sh", "exit 0\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, `restarter: missing COMMAND: the start script to run (see restarter --help)`},
		{"unknown flag", []string{"--bogus", script}, `restarter: flag provided but not defined: -bogus (see restarter --help)`},
		{"missing command", []string{filepath.Join(dir, "nope.sh")}, `restarter: COMMAND "` + dir + `/nope.sh": no such file`},
		{"not executable", []string{notExec}, `restarter: COMMAND "` + notExec + `": not executable (permission denied)`},
		{"directory", []string{dir}, `restarter: COMMAND "` + dir + `": is a directory`},
		{"empty command", []string{""}, `restarter: COMMAND "": empty: give the start script to run`},
		{"empty check", []string{"--check", "", script}, `restarter: invalid value "" for flag -check: empty command`},
		{"bad term wait", []string{"--term-wait", "0s", script}, `restarter: invalid value "0s" for flag -term-wait: must be positive`},
		{"bad log format", []string{"--log-format", "xml", script}, `restarter: invalid value "xml" for flag -log-format: must be text or json`},
		{"bad init gate", []string{"--init-gate", "on", script}, `restarter: invalid value "on" for flag -init-gate: must be auto or off`},
		{"bad failed-restart policy", []string{"--on-failed-restart", "retry", script}, `restarter: invalid value "retry" for flag -on-failed-restart: must be exit or keep`},
		{"ready-url port out of range", []string{"--ready-url", "http://127.0.0.1:65536/server_info", script}, `restarter: invalid value "http://127.0.0.1:65536/server_info" for flag -ready-url: port 65536 out of range 1-65535`},
		{"ready-url not http", []string{"--ready-url", "https://127.0.0.1:9901/ready", script}, `restarter: invalid value "https://127.0.0.1:9901/ready" for flag -ready-url: must be an http:// URL (for anything else use --ready-cmd)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(proctest.Binary(t, "restarter"), tt.args...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit)
			require.Equal(t, 2, exit.ExitCode())
			require.Equal(t, tt.want+"\n", stderr.String())
			require.Empty(t, stdout.String())
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	out, err := exec.Command(proctest.Binary(t, "restarter"), "--help").Output()
	require.NoError(t, err)
	for _, want := range []string{"--term-wait", "--log-format", "SIGHUP", "SIGUSR1", "SIGTERM, SIGINT", "Exit codes:"} {
		require.Contains(t, string(out), want)
	}
	out, err = exec.Command(proctest.Binary(t, "restarter"), "--version").Output()
	require.NoError(t, err)
	require.Regexp(t, `^restarter \S+\n$`, string(out))
}

// forkedPIDs returns the pids of every epoch started so far, in order.
func forkedPIDs(r *proctest.Proc) []int {
	var pids []int
	for _, l := range r.Lines(forkedRE) {
		i := strings.LastIndex(l, "=")
		pid, _ := strconv.Atoi(l[i+1:])
		pids = append(pids, pid)
	}
	return pids
}

// stripPID removes the "pid=N " field a child prints, which varies per run.
func stripPID(line string) string {
	fields := strings.Fields(line)
	var out []string
	for _, f := range fields {
		if !strings.HasPrefix(f, "pid=") {
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}
