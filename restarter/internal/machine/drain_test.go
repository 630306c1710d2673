package machine

import (
	"testing"
	"time"
)

// drainPolicy stops with a drain of at most a minute.
var drainPolicy = Policy{TermWait: testTermWait, StopDrain: time.Minute}

var (
	startDrain = do(StartDrain{}, SetTimer{Timer: StopDrainTimer, After: time.Minute})
	endDrain   = []Action{StopTimer{Timer: StopDrainTimer}, StopDrain{}}
)

func TestMachineStopDrain(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "the drain ends as soon as no connection is left, then the stop proper",
			steps: then(twoEpochs,
				step{term, startDrain},
				step{DrainProgress{Connections: 3}, nil},
				step{hup, nil}, // no hot restart once a stop began
				step{DrainProgress{Connections: 3}, nil},
				step{DrainProgress{Connections: 0}, cat(endDrain, do(sends(101, SIGTERM), holdOlder, termWait))},
				step{Exited{PID: 101}, do(stopOlder, sends(100, SIGTERM))},
				step{Exited{PID: 100}, do(Exit{Code: 0})},
			),
		},
		{
			name: "--stop-drain passed with connections left: the stop proper",
			steps: then(oneEpoch,
				step{term, startDrain},
				step{DrainProgress{Connections: 2}, nil},
				step{TimerFired{Timer: StopDrainTimer}, cat(endDrain, do(sends(100, SIGTERM), termWait))},
				step{DrainProgress{Connections: 0}, nil}, // late: the drain is over
				step{Exited{PID: 100}, do(Exit{Code: 0})},
			),
		},
		{
			name: "a second stop signal skips the rest of the drain",
			steps: then(oneEpoch,
				step{term, startDrain},
				step{intr, cat(endDrain, do(sends(100, SIGTERM), termWait))},
				step{intr, do(sends(100, SIGKILL), killWait)}, // and a third kills, as ever
				step{Exited{PID: 100, Signal: SIGKILL}, do(Exit{Code: 1})},
			),
		},
		{
			name: "an epoch that crashes while draining makes the exit code 1; all gone ends it",
			steps: then(oneEpoch,
				step{term, startDrain},
				step{Exited{PID: 100, Signal: SIGSEGV}, do(Exit{Code: 1})},
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { play(t, New(drainPolicy), tt.steps) })
	}
}

func TestMachineStopDrainStatus(t *testing.T) {
	m := New(drainPolicy)
	play(t, m, then(oneEpoch, step{term, startDrain}))
	if got := m.Status().Phase; got != "draining" {
		t.Errorf("phase %q, want draining", got)
	}
}
