package supervisor

import (
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"time"
)

// This file is the readiness probe of a new epoch (--ready-url,
// --ready-cmd). A watcher runs in its own goroutine and reports one event;
// the event loop owns everything else.

// readyPollInterval is how often a readiness probe runs.
const readyPollInterval = 100 * time.Millisecond

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
		if ev, ok := r.watchReady(wctx, epoch, pid); ok {
			r.report(ctx, ev)
		}
	}()
}

// watchReady probes epoch (process pid) every readyPollInterval until it is
// ready, and reports Ready then; it gives up silently when ctx is done (the
// machine's ready timeout decides what that means).
func (r *runner) watchReady(ctx context.Context, epoch, pid int) (Ready, bool) {
	probe := func(ctx context.Context) bool { return r.probeURL(ctx, epoch) }
	if len(r.cfg.ReadyCmd) > 0 {
		probe = func(ctx context.Context) bool { return r.probeCmd(ctx, epoch, pid) }
	}
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	for {
		if probe(ctx) {
			return Ready{Epoch: epoch}, true
		}
		select {
		case <-ctx.Done():
			return Ready{}, false
		case <-tick.C:
		}
	}
}

// probeURL reports whether --ready-url answers 200. When the answer is
// Envoy's /server_info, it must also come from epoch itself, LIVE: Envoy's
// admin port passes from epoch to epoch, so the old epoch may answer first.
func (r *runner) probeURL(ctx context.Context, epoch int) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	code, body, err := httpGet(ctx, r.cfg.ReadyURL, 1<<20)
	if err != nil || code != 200 {
		return false
	}
	var info struct {
		State   string `json:"state"`
		Options *struct {
			RestartEpoch json.RawMessage `json:"restart_epoch"`
		} `json:"command_line_options"`
	}
	if json.Unmarshal(body, &info) != nil || info.Options == nil {
		return true // not /server_info: 200 means ready
	}
	got, _ := strconv.Unquote(string(info.Options.RestartEpoch))
	if got == "" {
		got = string(info.Options.RestartEpoch)
	}
	return info.State == "LIVE" && got == strconv.Itoa(epoch)
}

// probeCmd reports whether --ready-cmd exits 0 for epoch.
func (r *runner) probeCmd(ctx context.Context, epoch, pid int) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.Command(r.cfg.ReadyCmd[0], r.cfg.ReadyCmd[1:]...)
	cmd.Env = append(r.childEnv(epoch), "ENVOY_PID="+strconv.Itoa(pid))
	cmd.Dir = r.cfg.Dir
	_, err := r.sys.runHelper(ctx, cmd)
	return err == nil
}
