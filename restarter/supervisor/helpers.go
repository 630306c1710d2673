package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"time"
)

// This file runs the helpers of a safe hot restart: the pre-restart check
// and the readiness probes. Each runs in its own goroutine and reports one
// event; the event loop owns everything else.

// readyPollInterval is how often a readiness probe runs.
const readyPollInterval = 100 * time.Millisecond

// runCheck runs --check for epoch with env and reports the outcome.
func (r *runner) runCheck(ctx context.Context, epoch int, env []string) CheckFinished {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTimeout)
	defer cancel()
	cmd := exec.Command(r.cfg.Check[0], r.cfg.Check[1:]...)
	cmd.Env, cmd.Dir = env, r.cfg.Dir
	out, err := r.forker.runHelper(ctx, cmd)
	switch {
	case err == nil:
		return CheckFinished{Epoch: epoch, Output: out}
	case ctx.Err() == context.DeadlineExceeded:
		return CheckFinished{Epoch: epoch, Err: fmt.Sprintf("%s did not finish within --check-timeout=%s", r.cfg.Check[0], r.cfg.CheckTimeout), Output: out}
	default:
		return CheckFinished{Epoch: epoch, Err: fmt.Sprintf("%s: %v", r.cfg.Check[0], err), Output: out}
	}
}

// probeTimeout bounds one readiness probe.
const probeTimeout = time.Second

// watchReady probes epoch (process pid) every readyPollInterval until it is
// ready, and reports Ready then. Each time the reason it is not ready
// changes, it reports NotReady with the new reason, so the machine can name
// the last one if the epoch never gets ready. It gives up silently when ctx
// is done (the machine's ready timeout decides what that means).
func (r *runner) watchReady(ctx context.Context, epoch, pid int, report func(Event)) {
	probe := func(ctx context.Context) error { return r.probeURL(ctx, epoch) }
	if len(r.cfg.ReadyCmd) > 0 {
		probe = func(ctx context.Context) error { return r.probeCmd(ctx, epoch, pid) }
	}
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	last := ""
	for {
		err := probe(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			report(Ready{Epoch: epoch})
			return
		}
		if err.Error() != last {
			last = err.Error()
			report(NotReady{Epoch: epoch, Reason: last})
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// probeURL returns nil when --ready-url says epoch is ready, else why not.
func (r *runner) probeURL(ctx context.Context, epoch int) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	code, body, err := httpGet(ctx, r.cfg.ReadyURL, maxProbeBody)
	if err != nil {
		return err
	}
	return readyAnswer(r.cfg.ReadyURL, code, body, epoch)
}

// readyAnswer returns nil when a 200 answer of --ready-url says epoch is
// ready, else why not. Any 200 will do, except from Envoy's /server_info:
// Envoy's admin port passes from epoch to epoch, so the old epoch may
// answer first, and the answer must parse, come from epoch and say LIVE.
func readyAnswer(rawURL string, code int, body []byte, epoch int) error {
	if code != 200 {
		return fmt.Errorf("GET %s: status %d%s", rawURL, code, excerpt(body))
	}
	u, err := url.Parse(rawURL)
	if err != nil || path.Base(u.Path) != "server_info" {
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

// probeCmd returns nil when --ready-cmd exits 0 for epoch, else why not.
func (r *runner) probeCmd(ctx context.Context, epoch, pid int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.Command(r.cfg.ReadyCmd[0], r.cfg.ReadyCmd[1:]...)
	cmd.Env = append(r.env(epoch), "ENVOY_PID="+strconv.Itoa(pid))
	cmd.Dir = r.cfg.Dir
	out, err := r.forker.runHelper(ctx, cmd)
	if err != nil {
		return fmt.Errorf("%s: %v%s", r.cfg.ReadyCmd[0], err, excerpt([]byte(lastLine(out))))
	}
	return nil
}

// lastLine returns the last non-empty line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return lines[len(lines)-1]
}
