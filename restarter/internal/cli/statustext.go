package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/logging"
	"github.com/envoy-restarter/restarter/restarter/status"
)

// shownRestarts is how many restart records `restarter status` shows; --json
// gives every one kept.
const shownRestarts = 5

// formatStatus is `restarter status` for a person: the phase, the epochs,
// the restart under way, the last restarts and the counters. Text that
// comes from elsewhere (reasons, paths) has its control characters escaped.
func formatStatus(s status.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase: %s\n", s.Phase)
	epochs := make([]string, len(s.Epochs))
	for i, e := range s.Epochs {
		epochs[i] = fmt.Sprintf("%d (PID %d, %s)", e.Epoch, e.PID, e.State)
	}
	fmt.Fprintf(&b, "epochs: %s\n", orNone(strings.Join(epochs, ", ")))
	if r := s.Restart; r != nil {
		fmt.Fprintf(&b, "restart in progress: epoch %d (%s)\n", r.Epoch, r.Stage)
	}
	if s.Queued {
		b.WriteString("restart queued: yes\n")
	}
	if l := s.LastRestart; l != nil {
		fmt.Fprintf(&b, "last restart: epoch %d %s", l.Epoch, l.Result)
		if l.Reason != "" {
			b.WriteString(": " + logging.EscapeControl(l.Reason))
		}
		b.WriteString("\n")
	}
	recent := s.Restarts[max(0, len(s.Restarts)-shownRestarts):]
	if len(recent) > 0 {
		fmt.Fprintf(&b, "last restarts (of %d kept; --json for all):\n", len(s.Restarts))
	}
	for i := len(recent) - 1; i >= 0; i-- {
		b.WriteString("  " + formatRecord(recent[i]) + "\n")
	}
	c := s.Counters
	fmt.Fprintf(&b, "counters: sighups=%d reloads=%d restarts=%d failed=%d checks_failed=%d init_flags_cleared=%d slot_holds=%d memory_guard_refusals=%d\n",
		c.SIGHUPs, c.Reloads, c.Restarts, c.RestartsFailed, c.ChecksFailed, c.InitFlagsCleared, c.SlotHolds, c.MemoryGuardRefusals)
	return b.String()
}

// formatRecord is one restart record on a line: "#3 epoch 2 reload
// refused after 0.12s: check failed: ...".
func formatRecord(r status.Restart) string {
	trigger := r.Trigger
	if r.WatchPath != "" {
		trigger += " " + logging.EscapeControl(r.WatchPath)
	}
	line := fmt.Sprintf("#%d epoch %d %s at %s", r.ID, r.Epoch, trigger, r.RequestedAt.Format(time.DateTime))
	switch r.Outcome {
	case "":
		return line + ": in progress"
	case status.OutcomeCoalesced:
		return fmt.Sprintf("%s: coalesced into #%d", line, r.CoalescedInto)
	}
	line = fmt.Sprintf("%s: %s after %.2fs", line, r.Outcome, r.DurationSeconds)
	if r.Reason != "" {
		line += ": " + logging.EscapeControl(r.Reason)
	}
	return line
}

// recordNote is what a reload's answer adds about its record.
func recordNote(r *status.Restart) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf(" (restart #%d, %.2fs)", r.ID, r.DurationSeconds)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
