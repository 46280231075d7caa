package harness

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is what a run found. Times are offsets from t=0 (the end of the
// initial convergence).
type Report struct {
	Scenario string        `json:"scenario"`
	Passed   bool          `json:"passed"`
	Settled  time.Duration `json:"settled_ns"` // initial convergence took this long
	Elapsed  time.Duration `json:"elapsed_ns"` // from t=0 to the end of the run
	Messages MessageStats  `json:"messages"`
	// Advertisements are link-state records originated during the run
	// (from t=0), per routing group.
	Advertisements map[string]uint64 `json:"advertisements"`
	// Steps is the per-fault timeline.
	Steps      []StepReport      `json:"steps"`
	Assertions []AssertionResult `json:"assertions"`
}

// MessageStats count the run's traffic. Lost and Duplicated refer to
// accepted messages only: a message refused with 4xx or 5xx is the
// sender's to retry, not the mesh's to deliver.
type MessageStats struct {
	Sent       int `json:"sent"`
	Accepted   int `json:"accepted"` // answered 250
	Refused    int `json:"refused"`  // any other answer or no answer
	Delivered  int `json:"delivered"`
	Duplicated int `json:"duplicated"` // accepted and found more than once
	// DuplicatedReplyLost counts accepted messages found more than once
	// only at an external receiver, each extra copy after a transaction
	// the sender logged as unanswered after the final dot: the duplicate
	// RFC 5321 §6.1 accepts when nobody can be asked (not a mesh fault;
	// Duplicated does not count them).
	DuplicatedReplyLost int `json:"duplicated_reply_lost,omitempty"`
	Lost                int `json:"lost"` // accepted, not found, no DSN either
	// Bounced counts accepted messages not delivered for which the mesh
	// returned a failure DSN to the sender: not silent, still not delivered.
	Bounced int `json:"bounced"`
	// DeliveredRefused counts refused messages that were delivered anyway
	// (the 250 was lost on the way back): not an error.
	DeliveredRefused int `json:"delivered_refused"`
	// LostIDs names up to ten lost messages (with where they sit, when
	// the cluster can tell), BouncedIDs up to ten bounced ones with the
	// DSN's diagnostic.
	LostIDs []string `json:"lost_ids,omitempty"`
	// AllDeliveredAt is when every accepted message was first seen
	// delivered (0: never; measured by delivered_exactly_once only).
	AllDeliveredAt time.Duration `json:"all_delivered_at_ns,omitempty"`
	// LastDeliveryAt is when the last accepted message that was delivered
	// reached its Maildir (file time): with Delivered, the delivery rate.
	LastDeliveryAt time.Duration `json:"last_delivery_at_ns,omitempty"`
	// LastSentAt is when the last message of the run was answered.
	LastSentAt time.Duration `json:"last_sent_at_ns,omitempty"`
	BouncedIDs []string      `json:"bounced_ids,omitempty"`
}

// StepReport is one timeline step with what followed it.
type StepReport struct {
	At     time.Duration `json:"at_ns"`
	Name   string        `json:"name,omitempty"`
	Action string        `json:"action"`
	Error  string        `json:"error,omitempty"`
	// Converged is how long after the step the LSDB took to settle on a new
	// digest agreed by every live node (before the next fault); nil when it
	// did not change or did not settle.
	Converged *time.Duration `json:"converged_ns,omitempty"`
	// Note says why Converged is missing.
	Note string `json:"note,omitempty"`
	// Events are the network's fault-table changes attributed to the step
	// (flap toggles included).
	Events []string `json:"events,omitempty"`
}

// AssertionResult is one assertion's verdict.
type AssertionResult struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// Failed lists the assertions that failed.
func (r *Report) Failed() []AssertionResult {
	var out []AssertionResult
	for _, a := range r.Assertions {
		if !a.Passed {
			out = append(out, a)
		}
	}
	return out
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	verdict := "PASS"
	if !r.Passed {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "scenario %s: %s (settled in %v, ran %v)\n", r.Scenario, verdict, round(r.Settled), round(r.Elapsed))
	m := r.Messages
	fmt.Fprintf(&b, "messages: sent %d, accepted %d, refused %d, delivered %d, duplicated %d, lost %d, bounced %d",
		m.Sent, m.Accepted, m.Refused, m.Delivered, m.Duplicated, m.Lost, m.Bounced)
	if m.DeliveredRefused > 0 {
		fmt.Fprintf(&b, " (+%d refused but delivered)", m.DeliveredRefused)
	}
	if m.DuplicatedReplyLost > 0 {
		fmt.Fprintf(&b, " (+%d twice at an external receiver after a lost reply, RFC 5321 §6.1)", m.DuplicatedReplyLost)
	}
	if m.LastDeliveryAt > 0 {
		fmt.Fprintf(&b, "; last delivery at %v", round(m.LastDeliveryAt))
	}
	b.WriteString("\n")
	if len(m.LostIDs) > 0 {
		fmt.Fprintf(&b, "  lost: %s\n", strings.Join(m.LostIDs, "\n        "))
	}
	if len(m.BouncedIDs) > 0 {
		fmt.Fprintf(&b, "  bounced: %s\n", strings.Join(m.BouncedIDs, "\n           "))
	}
	var total uint64
	var per []string
	for _, rg := range sortedKeys(r.Advertisements) {
		total += r.Advertisements[rg]
		per = append(per, fmt.Sprintf("%s %d", rg, r.Advertisements[rg]))
	}
	fmt.Fprintf(&b, "advertisements: %d (%s)\n", total, strings.Join(per, ", "))
	b.WriteString("timeline:\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "  %8v  %s", round(s.At), s.Action)
		if s.Name != "" {
			fmt.Fprintf(&b, " [%s]", s.Name)
		}
		if s.Converged != nil {
			fmt.Fprintf(&b, "  converged in %v", round(*s.Converged))
		} else if s.Note != "" {
			fmt.Fprintf(&b, "  (%s)", s.Note)
		}
		if s.Error != "" {
			fmt.Fprintf(&b, "  ERROR %s", s.Error)
		}
		b.WriteString("\n")
		for _, e := range s.Events {
			fmt.Fprintf(&b, "            netem: %s\n", e)
		}
	}
	b.WriteString("assertions:\n")
	for _, a := range r.Assertions {
		v := "pass"
		if !a.Passed {
			v = "FAIL"
		}
		fmt.Fprintf(&b, "  %s  %s: %s\n", v, a.Name, a.Detail)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
