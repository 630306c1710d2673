// Package httpprobe is the restarter's HTTP client for Envoy's admin: the
// readiness probe's GET. It is hand-written on purpose: probes only ever
// talk to an admin endpoint on the host, and net/http would bring TLS,
// HTTP/2 and proxies along and cost about 3 MiB of resident memory (as
// measured, docs/BENCHMARKS.md), more than the rest of the restarter.
package httpprobe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// It is a small HTTP/1.1 client: one GET per connection (Connection:
// close, so every probe reaches the epoch that owns the admin's listening
// socket now, never an old epoch over a kept-alive connection), bodies
// delimited by Content-Length, chunked encoding or the end of the
// connection, everything bounded in size and time. Envoy's admin refuses
// HTTP/1.0 with 426 Upgrade Required and may answer chunked.

// Limits of one probe answer.
const (
	maxStatusAndHeaderLine = 8 << 10 // bytes in one line of the head
	maxHeaderLines         = 100
	MaxBody                = 1 << 20 // bytes; Envoy's /server_info is a few KiB
)

// ParseURL checks a --ready-url: plain http:// with a host and, when
// given, a port in 1..65535.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.Unwrap(err) // url.Error repeats the URL
	case u.Scheme != "http":
		return nil, errors.New("must be an http:// URL (for anything else use --ready-cmd)")
	case u.Hostname() == "":
		return nil, errors.New("has no host")
	case u.User != nil:
		return nil, errors.New("user information is not supported")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %s out of range 1-65535", p)
		}
	}
	return u, nil
}

// Ready returns nil when a GET of rawURL says Envoy's epoch is ready, else
// why not (see readyAnswer). ctx bounds the whole probe.
func Ready(ctx context.Context, rawURL string, epoch int) error {
	code, body, err := Get(ctx, rawURL, MaxBody)
	if err != nil {
		return err
	}
	return readyAnswer(rawURL, code, body, epoch)
}

// readyAnswer returns nil when a 200 answer of rawURL says epoch is
// ready, else why not. Any 200 will do, except from Envoy's /server_info:
// Envoy's admin port passes from epoch to epoch, so the old epoch may
// answer first, and the answer must parse, come from epoch and say LIVE.
func readyAnswer(rawURL string, code int, body []byte, epoch int) error {
	if code != 200 {
		return fmt.Errorf("GET %s: status %d%s", rawURL, code, excerpt(body))
	}
	u, err := url.Parse(rawURL)
	if err != nil || !slices.Contains(strings.Split(u.Path, "/"), "server_info") {
		return nil
	}
	var info struct {
		State   string `json:"state"`
		Options *struct {
			RestartEpoch json.RawMessage `json:"restart_epoch"`
		} `json:"command_line_options"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return fmt.Errorf("GET %s: /server_info does not parse: %v", rawURL, err)
	}
	if info.Options == nil || info.State == "" {
		return fmt.Errorf("GET %s: /server_info has no state or command_line_options", rawURL)
	}
	got, err := strconv.Unquote(string(info.Options.RestartEpoch)) // proto3 JSON may quote numbers
	if err != nil {
		got = string(info.Options.RestartEpoch)
	}
	if got != strconv.Itoa(epoch) {
		return fmt.Errorf("GET %s: answered by restart_epoch %s, not %d", rawURL, got, epoch)
	}
	if info.State != "LIVE" {
		return fmt.Errorf("GET %s: epoch %d is %s", rawURL, epoch, info.State)
	}
	return nil
}

// excerpt quotes the start of an error answer's body, for the log.
func excerpt(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return ""
	}
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return fmt.Sprintf(" %q", s)
}

// Get fetches rawURL with HTTP/1.1 and returns the status code and the
// body (at most maxBody bytes: a longer one is an error, never silently cut).
// ctx bounds the whole exchange, connecting included. Every error says what
// failed, prefixed with "GET rawURL".
func Get(ctx context.Context, rawURL string, maxBody int64) (int, []byte, error) {
	return do(ctx, "GET", rawURL, maxBody)
}

// Post sends rawURL an empty POST (Envoy's admin takes its mutating
// commands, /healthcheck/fail or /drain_listeners, only so) and returns the
// status code and body, as Get does.
func Post(ctx context.Context, rawURL string, maxBody int64) (int, []byte, error) {
	return do(ctx, "POST", rawURL, maxBody)
}

func do(ctx context.Context, method, rawURL string, maxBody int64) (int, []byte, error) {
	code, body, err := exchange(ctx, method, rawURL, maxBody)
	if err != nil {
		if cerr := ctxErr(ctx); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w: %v", cerr, err)
		}
		return 0, nil, fmt.Errorf("%s %s: %w", method, rawURL, err)
	}
	return code, body, nil
}

// ctxErr is ctx.Err(), also in the instant after ctx's deadline passed and
// before ctx noticed: the connection's deadline is the same one.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

func exchange(ctx context.Context, method, rawURL string, maxBody int64) (int, []byte, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return 0, nil, err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	// A cancelled ctx without a deadline unblocks reads and writes too.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	length := ""
	if method != "GET" {
		length = "Content-Length: 0\r\n"
	}
	req := method + " " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUser-Agent: restarter\r\nAccept: */*\r\n" + length + "Connection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return 0, nil, err
	}
	return readResponse(bufio.NewReaderSize(conn, maxStatusAndHeaderLine), maxBody)
}

// readResponse reads one HTTP/1.x response to a GET from r: the status code
// and the body, at most maxBody bytes. Interim 1xx answers are skipped. It
// never reads more than the limits allow, whatever r holds.
func readResponse(r *bufio.Reader, maxBody int64) (int, []byte, error) {
	for interim := 0; ; interim++ {
		code, h, err := readHead(r)
		if err != nil {
			return 0, nil, err
		}
		switch {
		case code == 101:
			return 0, nil, errors.New("unexpected 101 Switching Protocols")
		case code < 200 && interim < 10:
			continue
		case code < 200:
			return 0, nil, errors.New("too many interim 1xx responses")
		case code == 204 || code == 304:
			return code, nil, nil
		}
		body, err := readBody(r, h, maxBody)
		if err != nil {
			return 0, nil, fmt.Errorf("%d response: %w", code, err)
		}
		return code, body, nil
	}
}

// header is what the probe needs from a response's header fields.
type header struct {
	contentLength int64 // -1 when absent
	chunked       bool
}

// readHead reads a status line and the header fields after it.
func readHead(r *bufio.Reader) (int, header, error) {
	h := header{contentLength: -1}
	line, err := readLine(r)
	if err != nil {
		return 0, h, fmt.Errorf("reading the status line: %w", err)
	}
	code, err := parseStatusLine(line)
	if err != nil {
		return 0, h, err
	}
	for n := 0; ; n++ {
		line, err := readLine(r)
		if err != nil {
			return 0, h, fmt.Errorf("reading the header: %w", err)
		}
		if line == "" {
			return code, h, nil
		}
		if n == maxHeaderLines {
			return 0, h, fmt.Errorf("more than %d header lines", maxHeaderLines)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.TrimSpace(name) != name {
			return 0, h, fmt.Errorf("malformed header line %q", line)
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 || (h.contentLength >= 0 && n != h.contentLength) {
				return 0, h, fmt.Errorf("invalid Content-Length %q", value)
			}
			h.contentLength = n
		case "transfer-encoding":
			codings := strings.Split(value, ",")
			last := strings.ToLower(strings.TrimSpace(codings[len(codings)-1]))
			if last != "chunked" || len(codings) > 1 {
				return 0, h, fmt.Errorf("unsupported Transfer-Encoding %q", value)
			}
			h.chunked = true
		}
	}
}

// parseStatusLine parses "HTTP/1.1 200 OK" and returns 200.
func parseStatusLine(line string) (int, error) {
	proto, rest, _ := strings.Cut(line, " ")
	codeText, _, _ := strings.Cut(rest, " ")
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" || len(codeText) != 3 {
		return 0, fmt.Errorf("malformed status line %q", line)
	}
	code, err := strconv.Atoi(codeText)
	if err != nil || code < 100 {
		return 0, fmt.Errorf("malformed status line %q", line)
	}
	return code, nil
}

// readLine reads one line of a response's head or chunk framing, without
// its CRLF (or bare LF). A line longer than r's buffer is an error.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("line longer than %d bytes", r.Size())
	case errors.Is(err, io.EOF) && len(line) > 0:
		return "", io.ErrUnexpectedEOF
	case err != nil:
		return "", err
	}
	return string(bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))), nil
}

// readBody reads the body h announces: chunked, of Content-Length bytes, or
// up to the end of the connection.
func readBody(r *bufio.Reader, h header, maxBody int64) ([]byte, error) {
	switch {
	case h.chunked:
		return readChunked(r, maxBody)
	case h.contentLength > maxBody:
		return nil, fmt.Errorf("body of %d bytes is larger than the limit of %d", h.contentLength, maxBody)
	case h.contentLength >= 0:
		body := make([]byte, h.contentLength)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, fmt.Errorf("body shorter than its Content-Length %d: %w", h.contentLength, unexpectedEOF(err))
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > maxBody {
		return nil, fmt.Errorf("body larger than the limit of %d bytes", maxBody)
	}
	return body, nil
}

// readChunked decodes a chunked body (RFC 9112 section 7.1), skipping chunk
// extensions and trailer fields.
func readChunked(r *bufio.Reader, maxBody int64) ([]byte, error) {
	var body []byte
	for {
		line, err := readLine(r)
		if err != nil {
			return nil, fmt.Errorf("reading a chunk size: %w", unexpectedEOF(err))
		}
		sizeText, _, _ := strings.Cut(line, ";")
		sizeText = strings.TrimRight(sizeText, " \t")
		size, err := strconv.ParseUint(sizeText, 16, 63)
		if err != nil || sizeText == "" || strings.HasPrefix(sizeText, "+") {
			return nil, fmt.Errorf("malformed chunk size %q", line)
		}
		if int64(size) > maxBody-int64(len(body)) {
			return nil, fmt.Errorf("chunked body larger than the limit of %d bytes", maxBody)
		}
		if size == 0 {
			break
		}
		start := len(body)
		body = append(body, make([]byte, size)...)
		if _, err := io.ReadFull(r, body[start:]); err != nil {
			return nil, fmt.Errorf("reading a chunk: %w", unexpectedEOF(err))
		}
		if line, err := readLine(r); err != nil || line != "" {
			return nil, errors.New("chunk not followed by CRLF")
		}
	}
	for n := 0; ; n++ { // trailer fields, ignored
		line, err := readLine(r)
		if err != nil {
			return nil, fmt.Errorf("reading the trailer: %w", unexpectedEOF(err))
		}
		if line == "" {
			return body, nil
		}
		if n == maxHeaderLines {
			return nil, fmt.Errorf("more than %d trailer lines", maxHeaderLines)
		}
	}
}

// unexpectedEOF turns a bare EOF inside a body into io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
