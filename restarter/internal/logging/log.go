// Package logging is the restarter's one logger: Envoy's log format (or
// JSON), written through a bounded queue so that no log write ever blocks
// the event loop, and control characters escaped so that nothing logged can
// forge a line.
package logging

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Format is the log format: Text or JSON.
type Format int

const (
	// Text is Envoy's format: "[2026-11-24 19:20:00.123][pid][info][restarter] message".
	Text Format = iota
	// JSON is one slog JSON object per line with the message's fields.
	JSON
)

// ParseFormat returns the format named s ("text" or "json").
func ParseFormat(s string) (Format, error) {
	switch s {
	case "text":
		return Text, nil
	case "json":
		return JSON, nil
	}
	return Text, fmt.Errorf("must be text or json")
}

// NewAsync returns the logger the restarter runs with: New's, writing
// through a Writer so that no log write ever blocks the event loop. Flush
// the Writer before exiting.
func NewAsync(w io.Writer, format Format) (*slog.Logger, *Writer) {
	lw := newWriter(w, func(n int) []byte {
		var b bytes.Buffer
		New(&b, format).Warn(fmt.Sprintf("dropped %d log line(s): the log reader was not reading", n), "dropped", n)
		return b.Bytes()
	})
	return New(lw, format), lw
}

// New returns the restarter's one logger, writing to w in format. Text is
// Envoy's format, so log searches written for Envoy and hot-restarter.py
// keep working.
func New(w io.Writer, format Format) *slog.Logger {
	if format == JSON {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "restarter")
	}
	return slog.New(&envoyHandler{w: w, pid: os.Getpid(), mu: new(sync.Mutex)})
}

// envoyHandler formats records as Envoy does. The message already carries its
// fields (PID=P, code=C), so attributes are left out of the text.
type envoyHandler struct {
	w   io.Writer
	pid int
	mu  *sync.Mutex
}

func (h *envoyHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *envoyHandler) Handle(_ context.Context, r slog.Record) error {
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	line := fmt.Sprintf("[%s][%d][%s][restarter] %s\n", t.Format("2006-01-02 15:04:05.000"), h.pid, envoyLevel(r.Level), EscapeControl(r.Message))
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, line) // one write per line: lines never interleave
	return err
}

func (h *envoyHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *envoyHandler) WithGroup(string) slog.Handler      { return h }

func envoyLevel(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warning"
	}
	return "error"
}

// EscapeControl escapes control characters (a newline above all) and bytes
// that are not UTF-8 in a log message, as strconv.Quote does, so that text
// from outside, such as a COMMAND with a newline in it, can never start a
// log line of its own or drive a terminal.
func EscapeControl(msg string) string {
	if !strings.ContainsFunc(msg, isControl) && utf8.ValidString(msg) {
		return msg
	}
	var b strings.Builder
	for len(msg) > 0 {
		r, size := utf8.DecodeRuneInString(msg)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, msg[0])
		case isControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(msg[:size])
		}
		msg = msg[size:]
	}
	return b.String()
}

// isControl reports a control character other than tab: C0, DEL, and C1
// (which terminals that take 8-bit controls obey as ESC sequences).
func isControl(r rune) bool { return r < 0x20 && r != '\t' || r >= 0x7f && r <= 0x9f }
