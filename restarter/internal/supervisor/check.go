package supervisor

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
	"github.com/envoy-restarter/restarter/restarter/internal/osproc"
)

// This file is the pre-restart check (--check) and the base id
// (--base-id-path) it reads first, and the environment both give the
// epochs and their helpers.

// startCheck begins the pre-restart check of epoch: it reads the base id
// (with --base-id-path), then runs --check in the background. When the
// outcome is already known it returns it with ok=false.
func (r *runner) startCheck(epoch int) (machine.CheckFinished, bool) {
	if r.cfg.BaseIDPath != "" {
		id, err := r.sys.readBaseID(r.cfg.BaseIDPath)
		if err != nil {
			return machine.CheckFinished{Epoch: epoch, Err: "base id: " + err.Error()}, false
		}
		r.baseID = &id
	}
	if reason := r.guard(); reason != "" {
		return machine.CheckFinished{Epoch: epoch, Err: reason, Guard: true}, false
	}
	if len(r.cfg.Check) == 0 {
		return machine.CheckFinished{Epoch: epoch}, false
	}
	env := r.childEnv(epoch)
	ctx := r.tasks.start(r.ctx, task{checkTask, 0})
	go func() { r.report(ctx, r.runCheck(ctx, epoch, env)) }()
	return machine.CheckFinished{}, true
}

// runCheck runs --check for epoch with env and reports the outcome.
func (r *runner) runCheck(ctx context.Context, epoch int, env []string) machine.CheckFinished {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTimeout)
	defer cancel()
	cmd := exec.Command(r.cfg.Check[0], r.cfg.Check[1:]...)
	cmd.Env, cmd.Dir = env, r.cfg.Dir
	out, err := r.sys.runHelper(ctx, cmd)
	switch {
	case err == nil:
		return machine.CheckFinished{Epoch: epoch, Output: out}
	case ctx.Err() == context.DeadlineExceeded:
		return machine.CheckFinished{Epoch: epoch, Err: fmt.Sprintf("%s did not finish within --check-timeout=%s", r.cfg.Check[0], r.cfg.CheckTimeout), Output: out}
	default:
		return machine.CheckFinished{Epoch: epoch, Err: fmt.Sprintf("%s: %v", r.cfg.Check[0], err), Output: out}
	}
}

// childEnv returns the environment of epoch's start script and helpers: the
// restarter's own, less NOTIFY_SOCKET, with RESTART_EPOCH, RESTARTER_INSTANCE
// and, with --base-id-path, ENVOY_BASE_ID_PATH and (for epochs after 0)
// ENVOY_BASE_ID.
func (r *runner) childEnv(epoch int) []string {
	set := []string{"RESTART_EPOCH=" + strconv.Itoa(epoch), osproc.InstanceEnv + "=" + r.instance}
	if r.cfg.BaseIDPath != "" {
		set = append(set, "ENVOY_BASE_ID_PATH="+r.cfg.BaseIDPath)
		if epoch > 0 && r.baseID != nil {
			set = append(set, "ENVOY_BASE_ID="+r.baseID.String())
		}
	}
	env := r.sys.environ()
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		// NOTIFY_SOCKET is the restarter's: an epoch or helper that used it
		// would speak for the restarter to the service manager.
		if name == "RESTART_EPOCH" || name == "NOTIFY_SOCKET" || name == osproc.InstanceEnv || (r.cfg.BaseIDPath != "" && (name == "ENVOY_BASE_ID" || name == "ENVOY_BASE_ID_PATH")) {
			continue
		}
		out = append(out, kv)
	}
	return append(out, set...)
}
