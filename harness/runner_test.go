package harness

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

const fakeScenario = `
name: fake
settle: 5s
topology:
  routing_groups:
    - {name: rga, nodes: [{name: a1}, {name: a2}]}
    - {name: rgb, domains: [rgb.test, b.example], nodes: [{name: b1}, {name: b2}]}
    - {name: rgc, nodes: [{name: c1}]}
  connectors:
    - {name: ab, from: rga, to: rgb, cost: 10}
    - {name: ba, from: rgb, to: rga, cost: 10}
timeline:
  - at: 0s
    send: {from: a1, to: user@rgb.test, count: 10, rate: 200}
  - at: 200ms
    name: crash-b1
    crash: b1
  - at: 300ms
    send: {from: b1, to: user@rga.test, count: 3, rate: 100}
duration: 1s
assert:
  - delivered_exactly_once: {by: 3s}
  - lsdb_converged: {by: 3s}
  - route: {from: a1, domain: rgb.test, path: [rga, rgc], after: 200ms, by: 2s}
  - convergence: {step: crash-b1, max: 1s}
  - max_advertisements: {max: 1}
  - refused: {min: 3}
`

func runFake(t *testing.T, src string, tweak func(*fakeCluster)) Report {
	t.Helper()
	sc, err := ParseScenario([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	f := newFake(sc)
	f.routeAfter["a1 rgb.test"] = []string{"rga", "rgc"}
	if tweak != nil {
		tweak(f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := Run(ctx, sc, Options{NewCluster: f.factory(), DataDir: t.TempDir(), Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", buf.String())
	return rep
}

func assertion(t *testing.T, rep Report, prefix string) AssertionResult {
	t.Helper()
	for _, a := range rep.Assertions {
		if strings.HasPrefix(a.Name, prefix) {
			return a
		}
	}
	t.Fatalf("no assertion %q in %+v", prefix, rep.Assertions)
	return AssertionResult{}
}

func TestRunnerPassesHealthyRun(t *testing.T) {
	rep := runFake(t, fakeScenario, nil)
	if !rep.Passed {
		t.Fatalf("failed: %+v", rep.Failed())
	}
	m := rep.Messages
	if m.Sent != 13 || m.Accepted != 10 || m.Refused != 3 || m.Delivered != 10 || m.Lost != 0 || m.Duplicated != 0 {
		t.Errorf("messages %+v", m)
	}
	// The last send starts at 300ms: nothing can be "all delivered" before.
	if m.AllDeliveredAt < 300*time.Millisecond {
		t.Errorf("all delivered at %v, before the last send step", m.AllDeliveredAt)
	}
	var crash *StepReport
	for i := range rep.Steps {
		if rep.Steps[i].Name == "crash-b1" {
			crash = &rep.Steps[i]
		}
	}
	if crash == nil || crash.Converged == nil {
		t.Fatalf("no convergence for the crash: %+v", rep.Steps)
	}
	if c := *crash.Converged; c < 50*time.Millisecond || c > 500*time.Millisecond {
		t.Errorf("convergence %v, fake reconverges after 100ms", c)
	}
	if len(crash.Events) == 0 {
		t.Errorf("crash step has no timeline events")
	}
}

func TestRunnerReportsLoss(t *testing.T) {
	rep := runFake(t, fakeScenario, func(f *fakeCluster) { f.broken["a1"] = true })
	if rep.Passed {
		t.Fatal("a run with a black-holing node passed")
	}
	if rep.Messages.Lost != 10 || len(rep.Messages.LostIDs) != 10 {
		t.Errorf("lost %d (%v), want 10", rep.Messages.Lost, rep.Messages.LostIDs)
	}
	if a := assertion(t, rep, "delivered exactly once"); a.Passed || !strings.Contains(a.Detail, "10 of 10") {
		t.Errorf("exactly-once: %+v", a)
	}
}

func TestRunnerReportsDuplicates(t *testing.T) {
	rep := runFake(t, fakeScenario, func(f *fakeCluster) { f.duplicating["a1"] = true })
	if rep.Passed || rep.Messages.Duplicated != 10 {
		t.Fatalf("passed=%v duplicated=%d", rep.Passed, rep.Messages.Duplicated)
	}
}

func TestRunnerAssertionFailures(t *testing.T) {
	tests := []struct {
		name   string
		tweak  func(*fakeCluster)
		failed string
	}{
		{"route never changes", func(f *fakeCluster) { delete(f.routeAfter, "a1 rgb.test") }, "route a1"},
		{"too many advertisements", func(f *fakeCluster) { f.origPerHop = 5 }, "at most 1"},
		{"slow convergence", func(f *fakeCluster) { f.reconverge = 1500 * time.Millisecond }, "convergence after crash-b1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := runFake(t, fakeScenario, tt.tweak)
			if rep.Passed {
				t.Fatal("passed")
			}
			if a := assertion(t, rep, tt.failed); a.Passed {
				t.Errorf("%s passed: %s", a.Name, a.Detail)
			}
			for _, a := range rep.Failed() {
				if !strings.HasPrefix(a.Name, tt.failed) {
					t.Errorf("unexpected failure %s: %s", a.Name, a.Detail)
				}
			}
		})
	}
}

func TestRunnerSettleFailure(t *testing.T) {
	sc, err := ParseScenario([]byte(fakeScenario))
	if err != nil {
		t.Fatal(err)
	}
	sc.Settle = 100 * time.Millisecond
	f := newFake(sc)
	f.down["a2"] = true
	rep, err := Run(context.Background(), sc, Options{NewCluster: f.factory(), DataDir: t.TempDir(), Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed || len(rep.Assertions) != 1 || !strings.Contains(rep.Assertions[0].Detail, "a2 is down") {
		t.Fatalf("report %+v", rep)
	}
}

func TestConvTrackerSettle(t *testing.T) {
	d := func(b byte) [32]byte { return [32]byte{b} }
	var c convTracker
	c.add(0, true, d(1))
	c.add(10, true, d(1)) // no change: not stored
	c.add(100, false, d(9))
	c.add(150, true, d(2))
	c.add(300, false, d(0))
	c.add(320, true, d(3))
	c.add(500, false, d(0))
	tests := []struct {
		from, to time.Duration
		want     time.Duration
		note     string
	}{
		{50, 250, 100, ""},
		{50, 400, 270, ""},
		{400, 450, -1, "LSDB unchanged"},
		{400, 600, -1, "LSDB did not settle"},
	}
	for _, tt := range tests {
		got, note := c.settle(tt.from, tt.to)
		if tt.want < 0 {
			if got != nil || note != tt.note {
				t.Errorf("settle(%d,%d) = %v %q, want %q", tt.from, tt.to, got, note, tt.note)
			}
			continue
		}
		if got == nil || *got != tt.want {
			t.Errorf("settle(%d,%d) = %v %q, want %v", tt.from, tt.to, got, note, tt.want)
		}
	}
	if len(c.samples) != 6 {
		t.Errorf("%d samples stored, want 6", len(c.samples))
	}
}
