package supervisor

import (
	"context"
	"syscall"

	"github.com/envoy-restarter/restarter/restarter/internal/control"
	"github.com/envoy-restarter/restarter/restarter/internal/machine"
)

// This file performs the machine's actions, and turns what the OS reports
// (a spawn, reaped children, a helper's outcome, a control request) into
// events.

// handle feeds events to the machine and performs its actions; what an
// action's outcome is (a Spawn's, a check known at once, a healed flag) is
// fed back before anything else. It reports the exit code once the machine
// asks to exit.
func (r *runner) handle(events []machine.Event) (code int, done bool) {
	for len(events) > 0 {
		ev := events[0]
		events = events[1:]
		for _, a := range r.machine.Handle(ev) {
			if exit, ok := a.(machine.Exit); ok {
				return exit.Code, true
			}
			if next := r.perform(a); next != nil {
				events = append([]machine.Event{next}, events...)
			}
		}
	}
	r.settled()
	return 0, false
}

// perform does one action, and returns the event it led to at once, if any.
func (r *runner) perform(a machine.Action) machine.Event {
	switch a := a.(type) {
	case machine.Log:
		r.log.Log(context.Background(), a.Level, a.Msg, a.Args...)
	case machine.Spawn:
		// Its garbage is handed back once the restarter is quiet again.
		r.releaseDue = r.releaseDue || a.Epoch > 0
		return r.spawn(a.Epoch)
	case machine.Kill:
		if err := r.sys.kill(a.PID, syscall.Signal(a.Signal)); err != nil {
			r.log.Error(err.Error())
		}
	case machine.SetTimer:
		r.setTimer(a.Timer, a.After)
	case machine.StopTimer:
		r.stopTimer(a.Timer)
	case machine.RunCheck:
		if ev, ok := r.startCheck(a.Epoch); !ok {
			return ev
		}
	case machine.StopCheck:
		r.stopCheck()
	case machine.WatchReady:
		r.startWatch(a.Epoch, a.PID)
	case machine.StopWatch:
		r.stopWatch(a.Epoch)
	case machine.WatchInit:
		r.watchInit(a)
	case machine.ClearInit:
		if r.gate.ClearInit() {
			return machine.InitCleared(a)
		}
	default:
		r.tell(a)
	}
	return nil
}

// tell performs the actions that tell or ask the world outside the
// epochs: the service manager, reload waiters, the metrics, Envoy's admin.
func (r *runner) tell(a machine.Action) {
	switch a := a.(type) {
	case machine.Notify:
		r.notify(a)
	case machine.ReloadResult:
		r.answer(a)
	case machine.Recorded:
		r.recorded(a.Restart)
	case machine.StartDrain:
		r.startDrain()
	case machine.StopDrain:
		r.tasks.stop(task{drainTask, 0})
	}
}

// watchInit starts epoch's INITIALIZING watch; an epoch forked known to be
// Envoy is held as initializing from its fork.
func (r *runner) watchInit(a machine.WatchInit) {
	ctx := r.tasks.start(r.ctx, task{initTask, a.PID})
	gated := r.lastSpawn.PID == a.PID && r.lastSpawn.Envoy
	go r.gate.Watch(ctx, a.Epoch, a.PID, gated, func(ev machine.Event) { r.report(ctx, ev) })
}

// answer sends a reload request its answer, with the record of the restart
// that answered it.
func (r *runner) answer(a machine.ReloadResult) {
	epoch := a.Epoch
	reply := control.Reply{OK: a.OK, Error: a.Reason, Epoch: &epoch}
	if a.Restart.ID != 0 {
		reply.Restart = &a.Restart
	}
	r.waiters[a.Waiter] <- reply // buffered: never blocks
	delete(r.waiters, a.Waiter)
}

// settled follows up on the machine's state once a batch of events is
// handled: the init gate hurries while a hot restart is queued, and memory
// is released once no restart is under way.
func (r *runner) settled() {
	inProgress, queued := r.machine.RestartPending()
	if r.gate != nil {
		r.gate.SetQueued(queued)
	}
	r.scheduleRelease(inProgress || queued)
	r.writeMetrics()
}

func (r *runner) spawn(epoch int) machine.Event {
	stdout, stderr, attach := r.childOutput()
	pid, err := r.sys.start(r.cfg.Path, append([]string{r.cfg.Command}, r.cfg.Args...), r.childEnv(epoch), r.cfg.Dir, stdout, stderr)
	attach(pid, err == nil)
	if err != nil {
		return machine.SpawnFailed{Epoch: epoch, Err: err.Error()}
	}
	r.lastSpawn = machine.Spawned{Epoch: epoch, PID: pid, Envoy: r.gate != nil && r.gate.Known()}
	return r.lastSpawn
}

func (r *runner) controlCall(c control.Call) []machine.Event {
	switch c.Command {
	case "status":
		s := r.machine.Status()
		c.Reply <- control.Reply{OK: true, Status: &s}
		return nil
	case "metrics":
		c.Reply <- control.Reply{OK: true, Metrics: string(r.metricsText())}
		return nil
	}
	r.lastWaiter++
	r.waiters[r.lastWaiter] = c.Reply
	return []machine.Event{machine.ReloadRequested{Waiter: r.lastWaiter}}
}

// finished releases the check or watch that reported ev.
func (r *runner) finished(ev machine.Event) {
	switch ev := ev.(type) {
	case machine.CheckFinished:
		r.stopCheck()
	case machine.Ready:
		r.stopWatch(ev.Epoch)
	}
}

// stopCheck cancels the check in progress, if any: its process is killed
// and its outcome dropped.
func (r *runner) stopCheck() { r.tasks.stop(task{checkTask, 0}) }

// stopWatch cancels epoch's readiness watcher, if any; its outcome is
// dropped.
func (r *runner) stopWatch(epoch int) { r.tasks.stop(task{readyTask, epoch}) }

// report hands the outcome of work running under ctx to the event loop,
// unless the loop has stopped.
func (r *runner) report(ctx context.Context, ev machine.Event) {
	select {
	case r.async <- outcome{ev: ev, ctx: ctx}:
	case <-r.ctx.Done():
	}
}

// reapAndLookAtInit reaps, then, before a hot restart request, looks at
// the newest epoch's INITIALIZING flag at once unless the machine knows its
// state: its watcher may not have found the region yet (epoch 0, in its
// first moments), or found it and not yet told.
func (r *runner) reapAndLookAtInit() []machine.Event {
	events := r.reap()
	if r.gate == nil {
		return events
	}
	if epoch, pid, ok := r.machine.Untold(); ok && r.gate.InitializingNow(pid) {
		events = append(events, machine.InitStarted{Epoch: epoch})
	}
	return events
}

// reap collects the exits of epochs and, as subreaper, of orphans.
func (r *runner) reap() []machine.Event {
	var events []machine.Event
	for _, ev := range r.sys.reap(r.machine.PIDs()) {
		r.tasks.stop(task{initTask, ev.PID}) // the epoch is gone: so is its INITIALIZING watch
		if ev.Signal != 0 || ev.Code != 0 {
			ev.LastError = r.lastError(ev.PID)
		}
		delete(r.outputs, ev.PID)
		events = append(events, ev)
	}
	if r.cfg.Subreaper {
		for _, ev := range r.sys.reapOrphans() {
			events = append(events, ev)
		}
	}
	return events
}
