package delivery

import (
	"testing"

	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp/reply"
)

// TestLoopsWait: a next hop's loop refusal (554 5.4.6) waits as 451 4.4.6,
// recognised by its codes whatever its text; other refusals stay as they are.
func TestLoopsWait(t *testing.T) {
	loop := reply.ParseOrText("554 5.4.6 Routing loop detected: this routing group was already visited")
	otherText := reply.ParseOrText("554 5.4.6 loop (said differently)")
	res := loopsWait([]queue.Result{
		{Addr: "a@x", Outcome: queue.PermFail, Reply: loop},
		{Addr: "b@x", Outcome: queue.PermFail, Reply: otherText},
		{Addr: "c@x", Outcome: queue.PermFail, Reply: reply.ParseOrText("554 5.4.0 not a loop")},
		{Addr: "d@x", Outcome: queue.PermFail, Reply: reply.ParseOrText("550 5.4.6 wrong code")},
		{Addr: "e@x", Outcome: queue.PermFail, Reply: reply.ParseOrText("554 Routing loop detected (no enhanced code)")},
	})
	for i, want := range []queue.Outcome{queue.TempFail, queue.TempFail, queue.PermFail, queue.PermFail, queue.PermFail} {
		if res[i].Outcome != want {
			t.Errorf("%s: outcome %v, want %v (%s)", res[i].Addr, res[i].Outcome, want, res[i].Reply)
		}
	}
	if !res[0].Reply.Same(reply.TempLoop("")) ||
		res[0].Reply.String() != "451 4.4.6 next hop refused a loop; waiting for another route ("+loop.String()+")" {
		t.Errorf("waiting reply %q", res[0].Reply)
	}
}
