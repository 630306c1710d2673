package supervisor

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/envoy-restarter/restarter/internal/httpprobe"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
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
	ctx := r.tasks.start(r.ctx, task{readyTask, epoch})
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
	return httpprobe.Ready(ctx, r.cfg.ReadyURL, epoch)
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
		return fmt.Errorf("%s: %v%s", r.cfg.ReadyCmd[0], err, quoteLine(lastLine(out)))
	}
	return nil
}

// quoteLine quotes the start of a helper's output line, for the log.
func quoteLine(line string) string {
	line = strings.TrimSpace(line)
	if line == "" {
		return ""
	}
	if len(line) > 80 {
		line = line[:80] + "..."
	}
	return fmt.Sprintf(" %q", line)
}

// lastLine returns the last non-empty line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return lines[len(lines)-1]
}
