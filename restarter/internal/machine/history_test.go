package machine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-restarter/restarter/restarter/status"
)

// clock is a test clock that moves only when told.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) advance(d time.Duration) { c.now = c.now.Add(d) }

// feed hands each event to m and returns every Recorded action, in order.
func feed(m *Machine, c *clock, evs ...any) []status.Restart {
	var recs []status.Restart
	for _, e := range evs {
		if d, ok := e.(time.Duration); ok {
			c.advance(d)
			continue
		}
		for _, a := range m.Handle(e.(Event)) {
			if r, ok := a.(Recorded); ok {
				recs = append(recs, r.Restart)
			}
		}
	}
	return recs
}

func TestHistoryRecordsEachRequestWithItsStagesAndOutcome(t *testing.T) {
	c := &clock{now: testNow}
	p := gatePolicy
	p.Readiness, p.Check, p.Clock = true, true, c.Now
	m := New(p)
	// Given epoch 0 up (its start is no request: no record),
	require.Empty(t, feed(m, c, Started{}, Spawned{Epoch: 0, PID: 100}, Ready{Epoch: 0}, InitStarted{Epoch: 0}, InitDone{Epoch: 0}))

	// when a SIGHUP's restart passes its check, forks, initializes and is
	// ready, while a reload and another SIGHUP come (queued, then coalesced),
	recs := feed(m, c, time.Second, hup, 100*time.Millisecond, CheckFinished{Epoch: 1},
		10*time.Millisecond, Spawned{Epoch: 1, PID: 101, Envoy: true},
		ReloadRequested{Waiter: w1}, hup,
		time.Second, InitDone{Epoch: 1}, 200*time.Millisecond, Ready{Epoch: 1})

	// then the SIGHUP that came while the reload's restart was queued is
	// coalesced into it at once, and the first restart is ok with every
	// stage stamped.
	start := testNow.Add(time.Second)
	require.Len(t, recs, 2)
	require.Equal(t, status.Restart{ID: 3, Epoch: 2, Trigger: "SIGHUP", RequestedAt: start.Add(110 * time.Millisecond),
		FinishedAt: start.Add(110 * time.Millisecond), Outcome: status.OutcomeCoalesced, CoalescedInto: 2}, recs[0])
	ok := recs[1]
	require.Equal(t, status.Restart{ID: 1, Epoch: 1, Trigger: "SIGHUP", RequestedAt: start,
		ForkedAt: start.Add(110 * time.Millisecond), InitializedAt: start.Add(1110 * time.Millisecond),
		ReadyAt: start.Add(1310 * time.Millisecond), FinishedAt: start.Add(1310 * time.Millisecond),
		DurationSeconds: 1.31, Outcome: status.OutcomeOK}, ok)

	// The queued restart (the reload's, id 2) is under way, not finished.
	st := m.Status()
	require.Len(t, st.Restarts, 3)
	require.Equal(t, 2, st.Restarts[1].ID)
	require.Equal(t, "reload", st.Restarts[1].Trigger)
	require.Empty(t, st.Restarts[1].Outcome)
	require.Equal(t, map[string]int{"ok": 1, "coalesced": 1}, st.Counters.Outcomes)
}

func TestHistoryRefusedAndFailed(t *testing.T) {
	c := &clock{now: testNow}
	p := safePolicy
	p.Clock = c.Now
	m := New(p)
	feed(m, c, Started{}, Spawned{Epoch: 0, PID: 100}, Ready{Epoch: 0})

	// A check's refusal is "refused", with its reason, and answers the
	// reload with its record.
	m.Handle(ReloadRequested{Waiter: w1})
	acts := m.Handle(CheckFinished{Epoch: 1, Err: "exit status 1"})
	var res ReloadResult
	var rec Recorded
	for _, a := range acts {
		switch a := a.(type) {
		case ReloadResult:
			res = a
		case Recorded:
			rec = a
		}
	}
	require.Equal(t, status.OutcomeRefused, rec.Restart.Outcome)
	require.Equal(t, "check failed: exit status 1", rec.Restart.Reason)
	require.Equal(t, rec.Restart, res.Restart, "the reload is answered with its record")

	// A new epoch that dies before it is ready is "failed".
	recs := feed(m, c, hup, CheckFinished{Epoch: 1}, Spawned{Epoch: 1, PID: 101}, time.Second, Exited{PID: 101, Code: 1}, TimerFired{Timer: GroupStopTimer})
	require.NotEmpty(t, recs)
	require.Equal(t, status.OutcomeFailed, recs[0].Outcome)
	require.Equal(t, "epoch 1 exited with code=1 before it was ready", recs[0].Reason)
	require.Equal(t, 1.0, recs[0].DurationSeconds)
}

func TestHistoryKeepsTheLast32(t *testing.T) {
	m := New(Policy{TermWait: testTermWait})
	m.Handle(Started{})
	m.Handle(Spawned{Epoch: 0, PID: 100})
	for i := range 40 {
		m.Handle(hup)
		m.Handle(Spawned{Epoch: i + 1, PID: 101 + i})
	}
	st := m.Status()
	require.Len(t, st.Restarts, historySize)
	require.Equal(t, 9, st.Restarts[0].ID, "the oldest dropped first")
	require.Equal(t, 40, st.Restarts[historySize-1].ID)
	require.Equal(t, 40, st.Counters.Outcomes["ok"], "counts are not limited to the history")
	require.Equal(t, status.OutcomeOK, st.Restarts[0].Outcome)
}

func TestWatchChangeIsARestartRequest(t *testing.T) {
	m := New(Policy{TermWait: testTermWait, Clock: func() time.Time { return testNow }})
	m.Handle(Started{})
	m.Handle(Spawned{Epoch: 0, PID: 100})
	// A watched file's change starts a hot restart, recorded with its path,
	require.Contains(t, withoutLogs(m.Handle(WatchChanged{Path: "/etc/envoy/envoy.yaml"})), Action(Spawn{Epoch: 1}))
	m.Handle(Spawned{Epoch: 1, PID: 101})
	st := m.Status()
	require.Equal(t, "watch", st.Restarts[0].Trigger)
	require.Equal(t, "/etc/envoy/envoy.yaml", st.Restarts[0].WatchPath)
	require.Equal(t, status.OutcomeOK, st.Restarts[0].Outcome)
	// and once a stop began, it starts nothing.
	m.Handle(term)
	require.Empty(t, withoutLogs(m.Handle(WatchChanged{Path: "/etc/envoy/envoy.yaml"})))
}
