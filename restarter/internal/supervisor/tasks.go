package supervisor

import "context"

// This file is the one registry of the work the loop starts and can
// cancel: the pre-restart check, each epoch's readiness watch and each
// epoch's INITIALIZING watch. Each runs under a context of its own; once it
// is stopped, what it reports is stale and dropped (see runner.next).

// taskKind names what a task does.
type taskKind int

const (
	checkTask taskKind = iota // the pre-restart check (one at a time)
	readyTask                 // an epoch's readiness watch, by epoch
	initTask                  // an epoch's INITIALIZING watch, by pid
	drainTask                 // the drain before a stop (one)
)

// task names one task: its kind and the epoch or pid it is for (0 for the
// check).
type task struct {
	kind taskKind
	id   int
}

// tasks maps each running task to what stops it.
type tasks map[task]context.CancelFunc

// start registers t under a new context derived from parent, replacing
// (and stopping) an earlier t, and returns the context to run it under.
func (ts tasks) start(parent context.Context, t task) context.Context {
	ts.stop(t)
	ctx, cancel := context.WithCancel(parent)
	ts[t] = cancel
	return ctx
}

// stop cancels t, if it runs; its outcome is dropped.
func (ts tasks) stop(t task) {
	if cancel := ts[t]; cancel != nil {
		cancel()
		delete(ts, t)
	}
}
