package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
	"github.com/envoy-restarter/restarter/restarter/internal/logging"
	"github.com/envoy-restarter/restarter/restarter/internal/relay"
)

// This file is the log relay (--log-relay): the epochs write into pipes the
// restarter owns, and it copies their lines to its own stdout and stderr,
// so that a stalled log reader costs counted lines, never a blocked Envoy
// (whose log lock is shared by every epoch); and what a failed epoch last
// logged becomes the reason its hot restart failed.

// lastErrorWait bounds how long a reaped epoch's pipes are read to their end
// for its last error line (a process it left behind may hold them open).
const lastErrorWait = 200 * time.Millisecond

// outputs are one epoch's relayed stdout and stderr.
type outputs struct{ stdout, stderr *relay.Source }

// startRelay starts the relays when --log-relay says so.
func (r *runner) startRelay() {
	on := r.cfg.LogRelay == config.LogRelayAlways ||
		r.cfg.LogRelay == config.LogRelayAuto && (r.sys.isStream(r.sys.stdout) || r.sys.isStream(r.sys.stderr))
	if !on {
		return
	}
	report := func(n uint64) []byte {
		var b bytes.Buffer
		logging.New(&b, r.cfg.LogFormat).Warn(fmt.Sprintf("dropped %d line(s) of the epochs' output: the log reader was not reading", n), "dropped", n)
		return b.Bytes()
	}
	r.relayOut = relay.New(r.sys.stdout, relay.DefaultBuffered, report)
	r.relayErr = relay.New(r.sys.stderr, relay.DefaultBuffered, report)
}

// childOutput returns the write ends of a new epoch's stdout and stderr
// pipes (nil without the relay: the restarter's own), and adds their read
// ends to the relay once started (attach), or closes them (the spawn
// failed).
func (r *runner) childOutput() (stdout, stderr *os.File, attach func(pid int, started bool)) {
	if r.relayOut == nil {
		return nil, nil, func(int, bool) {}
	}
	outR, outW, err1 := r.sys.pipe()
	errR, errW, err2 := r.sys.pipe()
	if err1 != nil || err2 != nil {
		for _, f := range []*os.File{outR, outW, errR, errW} {
			if f != nil {
				f.Close()
			}
		}
		r.log.Warn(fmt.Sprintf("log relay: %v; this epoch writes to the restarter's output itself", firstErr(err1, err2)))
		return nil, nil, func(int, bool) {}
	}
	return outW, errW, func(pid int, started bool) {
		outW.Close() // the child has its own copies
		errW.Close()
		if !started {
			outR.Close()
			errR.Close()
			return
		}
		r.outputs[pid] = outputs{stdout: r.relayOut.Add(outR), stderr: r.relayErr.Add(errR)}
	}
}

// lastError returns the last error or critical line epoch pid logged, its
// message without Envoy's prefix, after reading its pipes to their end (at
// most lastErrorWait); "" without the relay or such a line.
func (r *runner) lastError(pid int) string {
	o, ok := r.outputs[pid]
	if !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(r.ctx, lastErrorWait)
	defer cancel()
	for _, s := range []*relay.Source{o.stderr, o.stdout} {
		select {
		case <-s.Done():
		case <-ctx.Done(): // once, for both: a closed channel stays ready
		}
	}
	for _, s := range []*relay.Source{o.stderr, o.stdout} {
		if lines := s.LastErrors(); len(lines) > 0 {
			return envoyMessage(lines[len(lines)-1])
		}
	}
	return ""
}

// envoyMessage strips Envoy's log prefix from line: the bracketed time,
// pid, level, logger and source location.
func envoyMessage(line string) string {
	rest := strings.TrimSpace(line)
	for strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			break
		}
		rest = strings.TrimLeft(rest[end+1:], " ")
	}
	if rest == "" {
		return strings.TrimSpace(line)
	}
	return rest
}

// closeRelay writes what the epochs left queued (at most
// logging.FlushTimeout) and stops the relays.
func (r *runner) closeRelay() {
	if r.relayOut == nil {
		return
	}
	r.relayOut.Close(logging.FlushTimeout)
	r.relayErr.Close(logging.FlushTimeout)
}

// relayDropped counts the epochs' lines the relay dropped.
func (r *runner) relayDropped() uint64 {
	if r.relayOut == nil {
		return 0
	}
	return r.relayOut.Dropped() + r.relayErr.Dropped()
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
