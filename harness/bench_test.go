package harness

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// ring10 is ten routing groups of two nodes: a ring of cost-10
// connectors both ways plus cost-25 chords to the group five steps on (the
// topology of node/mesh's convergence benchmark). n2 of each group has the
// higher priority (it is the master); connectors leave through n1 only
// where onlyN1 says so.
func ring10(onlyN1 map[string]bool) Topology {
	var t Topology
	name := func(i int) string { return fmt.Sprintf("r%d", i%10) }
	conn := func(from, to string, cost uint32, label string) ConnectorSpec {
		c := ConnectorSpec{Name: from + label + to, From: from, To: to, Cost: cost}
		if onlyN1[c.Name] {
			c.SourceBridgeheads = []string{from + "n1"}
		}
		return c
	}
	for i := range 10 {
		rg := name(i)
		t.RoutingGroups = append(t.RoutingGroups, RGSpec{Name: rg,
			Nodes: []NodeSpec{{Name: rg + "n1"}, {Name: rg + "n2", Priority: 10}}})
		t.Connectors = append(t.Connectors, conn(rg, name(i+1), 10, "-"), conn(name(i+1), rg, 10, "-"))
		if i < 5 {
			t.Connectors = append(t.Connectors, conn(rg, name(i+5), 25, "-x-"), conn(name(i+5), rg, 25, "-x-"))
		}
	}
	return t
}

// benchScenario runs sc b.N times and reports the convergence time after
// the step named fault.
func benchConvergence(b *testing.B, sc *Scenario, fault string) {
	if err := sc.Validate(); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for i := 0; i < b.N; i++ {
		rep := runBench(b, sc)
		var conv *time.Duration
		for _, s := range rep.Steps {
			if s.Name == fault {
				conv = s.Converged
				if conv == nil {
					b.Fatalf("no convergence after %s: %s", fault, s.Note)
				}
			}
		}
		total += *conv
		b.Logf("run %d: settled in %v, converged %v after %s; advertisements %v", i, rep.Settled, *conv, fault, rep.Advertisements)
		for _, a := range rep.Assertions {
			b.Logf("  %v %s: %s", a.Passed, a.Name, a.Detail)
		}
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "conv-ms")
	b.ReportMetric(0, "ns/op")
}

func runBench(b *testing.B, sc *Scenario) Report {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, sc, Options{DataDir: b.TempDir(), Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	if len(rep.Steps) == 0 {
		b.Fatalf("run did not start: %+v", rep.Assertions)
	}
	return rep
}

// BenchmarkConvergenceBridgeheadCrash10RG: the only source bridgehead of
// r0's connector to r1 is killed; r0 must route to r1 another way.
func BenchmarkConvergenceBridgeheadCrash10RG(b *testing.B) {
	sc := &Scenario{
		Name:     "bench-bridgehead-crash",
		Settle:   90 * time.Second,
		Topology: ring10(map[string]bool{"r0-r1": true}),
		Timeline: []Step{{At: time.Second, Name: "crash", Crash: "r0n1"}},
		Duration: 8 * time.Second,
		Assert: []Assertion{{Route: &RouteAssertion{From: "r0n2", Domain: "r1.test",
			Path: []string{"r0", "r5", "r6", "r1"}, After: time.Second, By: 8 * time.Second}}},
	}
	benchConvergence(b, sc, "crash")
}

// BenchmarkConvergenceConnectorCut10RG: the link under r3<->r4 is cut.
func BenchmarkConvergenceConnectorCut10RG(b *testing.B) {
	sc := &Scenario{
		Name:     "bench-connector-cut",
		Settle:   90 * time.Second,
		Topology: ring10(nil),
		Timeline: []Step{{At: time.Second, Name: "cut", Cut: &LinkRef{Connector: "r3-r4"}}},
		Duration: 8 * time.Second,
		Assert: []Assertion{{Route: &RouteAssertion{From: "r3n1", Domain: "r4.test",
			Path: []string{"r3", "r8", "r9", "r4"}, After: time.Second, By: 8 * time.Second}}},
	}
	benchConvergence(b, sc, "cut")
}

// BenchmarkDeliveryFlapping compares end-to-end delivery rates through a
// three-group mesh with a steady mesh and with the connector on the
// least-cost path flapping every 500ms.
func BenchmarkDeliveryFlapping(b *testing.B) {
	topo := Topology{
		RoutingGroups: []RGSpec{{Name: "rga", Nodes: []NodeSpec{{Name: "a1"}}},
			{Name: "rgb", Nodes: []NodeSpec{{Name: "b1"}}}, {Name: "rgc", Nodes: []NodeSpec{{Name: "c1"}}}},
		Connectors: []ConnectorSpec{
			{Name: "ab", From: "rga", To: "rgb", Cost: 10}, {Name: "ba", From: "rgb", To: "rga", Cost: 10},
			{Name: "bc", From: "rgb", To: "rgc", Cost: 10}, {Name: "cb", From: "rgc", To: "rgb", Cost: 10},
			{Name: "ac", From: "rga", To: "rgc", Cost: 50}, {Name: "ca", From: "rgc", To: "rga", Cost: 50},
		},
	}
	const count, perSecond = 600, 200
	for _, flap := range []bool{false, true} {
		name := "steady"
		if flap {
			name = "flapping"
		}
		b.Run(name, func(b *testing.B) {
			var rate float64
			var bounced int
			var adverts uint64
			for i := 0; i < b.N; i++ {
				sc := &Scenario{Name: "bench-delivery-" + name, Topology: topo, Duration: 4 * time.Second,
					Timeline: []Step{{At: 0, Send: &SendSpec{From: "a1", To: "u@rgc.test", Count: count, Rate: perSecond}}},
					Assert:   []Assertion{{DeliveredExactlyOnce: &Deadline{By: 30 * time.Second}}}}
				if flap {
					sc.Timeline = append(sc.Timeline, Step{At: 200 * time.Millisecond, Name: "flap",
						Flap: &FlapSpec{LinkRef: LinkRef{Connector: "bc"}, Period: 500 * time.Millisecond}})
				}
				if err := sc.Validate(); err != nil {
					b.Fatal(err)
				}
				rep := runBench(b, sc)
				m := rep.Messages
				var fails []string
				for _, a := range rep.Failed() {
					fails = append(fails, a.Name+": "+a.Detail)
				}
				b.Logf("%s: accepted %d delivered %d lost %d bounced %d duplicated %d, last sent at %v, last delivery at %v; advertisements %v; failed: %s",
					name, m.Accepted, m.Delivered, m.Lost, m.Bounced, m.Duplicated, m.LastSentAt, m.LastDeliveryAt, rep.Advertisements, strings.Join(fails, "; "))
				// Delivered per second from the first send until the
				// later of the last delivery and the last send: bounced
				// messages do not count, and do not shorten the window.
				if window := max(m.LastDeliveryAt, m.LastSentAt); window > 0 {
					rate += float64(m.Delivered) / window.Seconds()
				}
				bounced += m.Bounced + m.Lost
				adverts += rep.Advertisements["rgb"] + rep.Advertisements["rgc"]
			}
			b.ReportMetric(rate/float64(b.N), "msgs/s")
			b.ReportMetric(float64(bounced)/float64(b.N), "undelivered/op")
			b.ReportMetric(float64(adverts)/float64(b.N), "adverts/op")
			b.ReportMetric(0, "ns/op")
		})
	}
}
