package harness

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestHarnessReportsLossFromBrokenNode runs real nodes where a1 accepts
// mail for rgb and, from t=0, cannot forward anything to another routing
// group: the harness must report the loss and fail the run.
func TestHarnessReportsLossFromBrokenNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real mesh")
	}
	sc, err := ParseScenario([]byte(`
name: broken-forwarding
topology:
  routing_groups:
    - {name: rga, nodes: [{name: a1}]}
    - {name: rgb, nodes: [{name: b1}]}
  connectors:
    - {name: ab, from: rga, to: rgb, cost: 10}
    - {name: ba, from: rgb, to: rga, cost: 10}
timeline:
  - {at: 0s, send: {from: a1, to: pat@rgb.test, count: 10, rate: 20}}
  - {at: 0s, send: {from: b1, to: quinn@rga.test, count: 5, rate: 20}}
assert:
  - delivered_exactly_once: {by: 6s}
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, sc, Options{DataDir: t.TempDir(), BreakForwarding: []string{"a1"}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Logf("\n%s", b.String())
	m := rep.Messages
	if rep.Passed {
		t.Fatal("the run passed although a1 forwarded nothing")
	}
	// b1 -> rga is intact; everything a1 accepted for rgb is stuck on a1.
	if m.Accepted != 15 || m.Lost != 10 || m.Delivered != 5 {
		t.Errorf("messages %+v, want 15 accepted, 10 lost, 5 delivered", m)
	}
	for _, id := range m.LostIDs {
		if !strings.Contains(id, "queued on a1") {
			t.Errorf("lost message not located on a1: %s", id)
		}
	}
	a := assertion(t, rep, "delivered exactly once")
	if a.Passed || !strings.Contains(a.Detail, "10 of 15 accepted messages lost") {
		t.Errorf("exactly-once assertion: %+v", a)
	}
}
