package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file is the readiness probe of a new epoch (--ready-url,
// --ready-cmd). A watcher runs in its own goroutine and reports one event;
// the event loop owns everything else.

// readyPollInterval is how often a readiness probe runs.
const readyPollInterval = 100 * time.Millisecond

// probeTimeout bounds one readiness probe.
const probeTimeout = time.Second

// startWatch starts the readiness watcher of epoch (process pid); StopWatch
// stops it.
func (r *runner) startWatch(epoch, pid int) {
	ctx, cancel := context.WithCancel(r.ctx)
	r.watches[epoch] = cancel
	go func() {
		// The machine's ready timeout decides when to give up; this bound only
		// keeps a watcher from outliving it by much if no StopWatch came.
		wctx, stop := context.WithTimeout(ctx, r.cfg.ReadyTimeout+time.Second)
		defer stop()
		r.watchReady(wctx, epoch, pid, func(ev machine.Event) { r.report(ctx, ev) })
	}()
}

// watchReady probes epoch (process pid) every readyPollInterval until it is
// ready, and reports Ready then. Each time the reason it is not ready
// changes, it reports NotReady with the new reason, so the machine can name
// the last one if the epoch never gets ready. It gives up silently when ctx
// is done (the machine's ready timeout decides what that means).
func (r *runner) watchReady(ctx context.Context, epoch, pid int, report func(machine.Event)) {
	probe := func(ctx context.Context) error { return r.probeURL(ctx, epoch) }
	if len(r.cfg.ReadyCmd) > 0 {
		probe = func(ctx context.Context) error { return r.probeCmd(ctx, epoch, pid) }
	}
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	last := ""
	for {
		err := probe(ctx)
		if err == nil {
			report(machine.Ready{Epoch: epoch}) // dropped by the loop if the watch was stopped
			return
		}
		if ctx.Err() != nil {
			return // stopped: why the last probe failed no longer matters
		}
		if err.Error() != last {
			last = err.Error()
			report(machine.NotReady{Epoch: epoch, Reason: last})
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

// probeCmd returns nil when --ready-cmd exits 0 for epoch, else why not.
func (r *runner) probeCmd(ctx context.Context, epoch, pid int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.Command(r.cfg.ReadyCmd[0], r.cfg.ReadyCmd[1:]...)
	cmd.Env = append(r.childEnv(epoch), "ENVOY_PID="+strconv.Itoa(pid))
	cmd.Dir = r.cfg.Dir
	out, err := r.sys.runHelper(ctx, cmd)
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
