package relay

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// envoyLine is a line in Envoy's default log format.
func envoyLine(level, logger, msg string) string {
	return fmt.Sprintf("[2026-11-24 19:20:00.123][4711][%s][%s] [source/server/server.cc:1] %s\n", level, logger, msg)
}

func TestLastErrorsKeepsTheLastErrorAndCriticalLinesEvenWhenDropped(t *testing.T) {
	// Given: the reader is stalled and the queue holds one long line, so
	// most of what the child writes is dropped.
	dst := newGate(t)
	r := New(dst, MaxLine, report)
	pr, child := childPipe(t)
	s := r.Add(pr)

	var written strings.Builder
	for i := range 300 {
		written.WriteString(envoyLine("info", "main", fmt.Sprintf("filler %d %s", i, strings.Repeat("x", 400))))
	}
	for i := range 5 {
		written.WriteString(envoyLine("error", "config", fmt.Sprintf("error %d", i)))
		written.WriteString(envoyLine("warning", "main", "not an error"))
	}
	written.WriteString("error: not in Envoy's format\n")
	written.WriteString(envoyLine("info", "main", strings.Repeat("m", 100)+" a message that mentions ][critical][ late in the line"))
	written.WriteString(envoyLine("critical", "main", "error initializing configuration: windows line end\r"))
	cut := envoyLine("critical", "assert", "x"+strings.Repeat("é", 2000)) // byte MaxErrorLine is inside an é
	written.WriteString(cut)
	// A line longer than MaxLine: its continuation, relayed as a line of
	// its own, starts like an error line but is not one (72 bytes precede
	// the message).
	written.WriteString(envoyLine("info", "main", strings.Repeat("y", MaxLine-73)+"[2026-11-24 19:20:00.123][1][error][fake] continuation"))
	written.WriteString(envoyLine("critical", "main", "the last reason"))
	written.WriteString(envoyLine("error", "main", "a last line without newline")[:80])

	// When: the child writes it all and exits.
	within(t, "the child", func() {
		_, err := child.Write([]byte(written.String()))
		require.NoError(t, err)
		child.Close()
	})
	waitDone(t, s)
	require.NotZero(t, r.Dropped())

	// Then: the last MaxErrorLines error and critical lines, cut to
	// MaxErrorLine bytes at a character's start, with no line ending.
	cutAt := strings.LastIndex(cut[:MaxErrorLine+1], "é")
	require.Less(t, cutAt, MaxErrorLine)
	want := []string{
		strings.TrimSuffix(envoyLine("error", "config", "error 1"), "\n"),
		strings.TrimSuffix(envoyLine("error", "config", "error 2"), "\n"),
		strings.TrimSuffix(envoyLine("error", "config", "error 3"), "\n"),
		strings.TrimSuffix(envoyLine("error", "config", "error 4"), "\n"),
		strings.TrimSuffix(envoyLine("critical", "main", "error initializing configuration: windows line end"), "\n"),
		cut[:cutAt] + "...",
		strings.TrimSuffix(envoyLine("critical", "main", "the last reason"), "\n"),
		envoyLine("error", "main", "a last line without newline")[:80],
	}
	require.Equal(t, want, s.LastErrors())
	dst.release()
	within(t, "Close", func() { r.Close(bound) })
}

func TestARealChildsStdoutAndStderr(t *testing.T) {
	// Given: a child whose stdout and stderr are pipes the relays read, as
	// the restarter will start an epoch.
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	outRelay, errRelay := New(stdout, DefaultBuffered, report), New(stderr, DefaultBuffered, report)
	outR, outW := childPipe(t)
	errR, errW := childPipe(t)
	critical := "[2026-11-24 19:20:00.123][42][critical][main] [source/server/server.cc:1] error initializing configuration '/etc/envoy.yaml': bad"
	cmd := exec.Command("sh", "-c", `printf 'starting\n'; printf '%s\n' "$1" >&2; printf 'bye\n' >&2; printf '11.104'`, "sh", critical)
	cmd.Stdout, cmd.Stderr = outW, errW
	require.NoError(t, cmd.Start())
	outW.Close() // the child holds the write ends now
	errW.Close()
	outSrc, errSrc := outRelay.Add(outR), errRelay.Add(errR)

	// When: it exits.
	require.NoError(t, cmd.Wait())
	waitDone(t, outSrc)
	waitDone(t, errSrc)
	within(t, "Close", func() {
		outRelay.Close(bound)
		errRelay.Close(bound)
	})

	// Then: its output, byte for byte, and the reason it gave.
	require.Equal(t, "starting\n11.104", stdout.String())
	require.Equal(t, critical+"\nbye\n", stderr.String())
	require.Equal(t, []string{critical}, errSrc.LastErrors())
	require.Empty(t, outSrc.LastErrors())
}
