package machine

import (
	"log/slog"
	"time"

	"github.com/envoy-restarter/restarter/restarter/status"
)

// Event is something that happened to the restarter: a signal, a child's
// birth or death, a timer. The OS layer turns the world into Events; the
// Machine turns Events into Actions.
type Event interface{ isEvent() }

// Started is the first event: the restarter is up and should start epoch 0.
type Started struct{}

// Signaled reports a signal delivered to the restarter (never SIGCHLD: child
// exits arrive as Exited).
type Signaled struct{ Signal Signal }

// Spawned reports that epoch Epoch is running as process PID. Envoy is
// true when earlier epochs were seen in Envoy's shared memory region: this
// one will set INITIALIZING too.
type Spawned struct {
	Epoch, PID int
	Envoy      bool
}

// SpawnFailed reports that epoch Epoch could not be started (fork or exec
// failed); Err says why, naming the path and errno.
type SpawnFailed struct {
	Epoch int
	Err   string
}

// Exited reports that child PID was reaped. Signal is non-zero when it was
// killed by a signal, otherwise Code is its exit status. LastError is the
// last error or critical line it logged, when the log relay kept one (only
// for an abnormal exit): the reason a failed restart quotes.
type Exited struct {
	LastError string
	PID       int
	Code      int
	Signal    Signal
}

// TimerFired reports that a timer set by a SetTimer action expired.
type TimerFired struct{ Timer Timer }

// CheckFinished reports the outcome of a RunCheck: Err is empty when the hot
// restart to Epoch may go ahead, else it says why not; Output is what the
// check printed.
type CheckFinished struct {
	// Guard says the memory guard refused (Err is its reason), not the check.
	Guard  bool
	Epoch  int
	Err    string
	Output string
}

// Ready reports that epoch Epoch passed its readiness probe.
type Ready struct{ Epoch int }

// NotReady reports why epoch Epoch failed its readiness probe, each time
// the reason changes; the machine names the last one if the epoch is never
// ready.
type NotReady struct {
	Epoch  int
	Reason string
}

// InitStarted reports that epoch Epoch was seen holding Envoy's
// INITIALIZING flag.
type InitStarted struct{ Epoch int }

// InitDone reports that epoch Epoch cleared Envoy's INITIALIZING flag, that
// the gate found it is not Envoy (it never mapped the region), or, with
// Warning, that the gate cannot watch it (an unknown region layout). Envoy
// says the epoch was seen mapping Envoy's region, though perhaps never
// holding the flag (it set and cleared it between two looks).
type InitDone struct {
	Epoch   int
	Warning string
	Envoy   bool
}

// InitCleared reports that a ClearInit found the flag set and cleared it.
type InitCleared struct{ Epoch, PID int }

// ReloadRequested is a hot restart asked for through the control socket.
// The Machine answers it with exactly one ReloadResult to Waiter, whatever
// happens (the restart's outcome, a shutdown, the restarter's exit).
type ReloadRequested struct{ Waiter Waiter }

// Waiter identifies a reload request; the supervisor keeps where its answer
// goes. The Machine only holds it until it hands it back in the ReloadResult
// that answers it.
type Waiter uint64

// DrainProgress reports how many downstream connections Envoy still has
// while it drains for a stop (StartDrain); 0 ends the drain.
type DrainProgress struct{ Connections int }

func (DrainProgress) isEvent() {}

// StartDrain asks the OS layer to fail Envoy's health check, drain its
// listeners, and report DrainProgress until no connection is left.
type StartDrain struct{}

// StopDrain stops what StartDrain started; its reports are dropped.
type StopDrain struct{}

func (StartDrain) isAction() {}
func (StopDrain) isAction()  {}

// WatchChanged reports that the content of a watched file (--watch) changed:
// a hot restart is asked for, as by SIGHUP.
type WatchChanged struct{ Path string }

func (WatchChanged) isEvent()    {}
func (Started) isEvent()         {}
func (Signaled) isEvent()        {}
func (Spawned) isEvent()         {}
func (SpawnFailed) isEvent()     {}
func (Exited) isEvent()          {}
func (TimerFired) isEvent()      {}
func (CheckFinished) isEvent()   {}
func (Ready) isEvent()           {}
func (NotReady) isEvent()        {}
func (InitStarted) isEvent()     {}
func (InitDone) isEvent()        {}
func (InitCleared) isEvent()     {}
func (ReloadRequested) isEvent() {}

// Action is something the Machine asks the OS layer to do, in order.
type Action interface{ isAction() }

// Spawn asks for epoch Epoch to be started; the OS layer answers with
// Spawned or SpawnFailed before any other event.
type Spawn struct{ Epoch int }

// Kill asks for Signal to be sent to PID.
type Kill struct {
	PID    int
	Signal Signal
}

// SetTimer asks for TimerFired{Timer} after After. Setting a timer again
// replaces the earlier one, whose firing is dropped.
type SetTimer struct {
	Timer Timer
	After time.Duration
}

// StopTimer cancels a timer set by SetTimer; a firing already on its way is
// dropped.
type StopTimer struct{ Timer Timer }

// Log asks for a log line. Msg is the operator-visible text (hot-restarter.py's
// wording); Args are slog key/value pairs for structured output.
type Log struct {
	Level slog.Level
	Msg   string
	Args  []any
}

// Exit asks the restarter to exit with Code. It is always the last action,
// and every reload request has been answered before it; the OS layer stops
// whatever timers, checks and probes are still running.
type Exit struct{ Code int }

// RunCheck asks for the pre-restart check of epoch Epoch (reading the base
// id, running --check); the OS layer answers with CheckFinished.
type RunCheck struct{ Epoch int }

// StopCheck abandons the pre-restart check of epoch Epoch: its process is
// killed and its CheckFinished, even one already on its way, is dropped.
type StopCheck struct{ Epoch int }

// WatchReady asks for epoch Epoch (process PID) to be probed until it is
// ready; the OS layer answers with Ready, at most once.
type WatchReady struct{ Epoch, PID int }

// WatchInit asks for epoch Epoch (process PID) to be watched in Envoy's
// shared memory region: InitStarted when it holds the INITIALIZING flag,
// InitDone once it cleared it. An epoch that never maps the region (not
// Envoy) gets neither.
type WatchInit struct{ Epoch, PID int }

// ClearInit asks for Envoy's INITIALIZING flag to be cleared, because epoch
// Epoch (process PID) died before clearing it and no other epoch is
// starting. The OS layer answers InitCleared if it was set.
type ClearInit struct{ Epoch, PID int }

// StopWatch stops probing epoch Epoch (it died, timed out or the restarter
// is shutting down); its Ready, even one already on its way, is dropped.
type StopWatch struct{ Epoch int }

// Notify asks for a message to the service manager (sd_notify): READY=1,
// RELOADING=1 (with MONOTONIC_USEC) or STOPPING=1, and STATUS=Status.
type Notify struct {
	Ready, Reloading, Stopping bool
	Status                     string
}

// ReloadResult answers the ReloadRequested of Waiter with the outcome of
// the hot restart it started or joined, or with why there will be none.
type ReloadResult struct {
	Waiter Waiter
	OK     bool
	Epoch  int
	Reason string
	// Restart is the record of the restart that answered (zero when there
	// was none: a shutdown refused the request).
	Restart status.Restart
}

func (Spawn) isAction()        {}
func (Kill) isAction()         {}
func (SetTimer) isAction()     {}
func (StopTimer) isAction()    {}
func (StopCheck) isAction()    {}
func (StopWatch) isAction()    {}
func (Log) isAction()          {}
func (Exit) isAction()         {}
func (RunCheck) isAction()     {}
func (WatchReady) isAction()   {}
func (Notify) isAction()       {}
func (WatchInit) isAction()    {}
func (ClearInit) isAction()    {}
func (ReloadResult) isAction() {}

// Timer names the machine's timers.
type Timer int

const (
	// TermWaitTimer bounds how long children get to exit after SIGTERM.
	TermWaitTimer Timer = iota + 1
	// KillWaitTimer bounds how long SIGKILLed children get to be reaped.
	KillWaitTimer
	// ReadyTimeoutTimer bounds how long a new epoch gets to become ready.
	ReadyTimeoutTimer
	// OlderTermTimer bounds how long the older epochs wait for their TERM
	// while the newest epoch stops first: half of the term wait.
	OlderTermTimer
	// GroupStopTimer bounds how long the verdict on an epoch killed by a
	// stop signal waits for the restarter's own (GroupStopGrace).
	GroupStopTimer
	// StopDrainTimer bounds the drain before a stop (--stop-drain).
	StopDrainTimer
)

// Exit codes of the restarter, documented in docs/OPERATIONS.md.
const (
	ExitClean = 0 // every child exited cleanly
	ExitError = 1 // a child failed, a forced kill, or a failed spawn
	ExitUsage = 2 // bad command line
)
