package routing

import (
	"fmt"
	"testing"
)

// ecmpTopo: RG a reaches d over k equal-cost connectors a->x_i->d; d has
// ntargets target bridgeheads on each connector... via its members.
func ecmpTopo(k int) *topo {
	tp := newTopo().rg("a", "a1").rg("d", "d1").as("d", "d.test", 0)
	for i := 0; i < k; i++ {
		x := fmt.Sprintf("x%d", i)
		tp.rg(x, x+"n").link("a"+x, "a", x, 2).link(x+"d", x, "d", 3)
	}
	return tp
}

func TestSpreadDeterministic(t *testing.T) {
	tb1, _ := Compute(Self{Node: "a1", RG: "a"}, ecmpTopo(4).records())
	tb2, _ := Compute(Self{Node: "a1", RG: "a"}, ecmpTopo(4).records())
	for i := 0; i < 200; i++ {
		d1, err := tb1.Route(msgID(i), "d.test")
		if err != nil {
			t.Fatal(err)
		}
		d2, _ := tb2.Route(msgID(i), "D.Test.")
		d3, _ := tb1.Route(msgID(i), "d.test")
		if d1.Connector.ID != d2.Connector.ID || d1.Connector.ID != d3.Connector.ID {
			t.Fatalf("msg %d: choices differ: %s %s %s", i, d1.Connector.ID, d2.Connector.ID, d3.Connector.ID)
		}
	}
	// The hash itself is pinned: other nodes (and other versions) must
	// agree on the spread. FNV-1a of "m\x00d".
	if got, want := spreadHash("m", "d"), fnvRef("m\x00d"); got != want {
		t.Errorf("spreadHash = %#x, want FNV-1a %#x", got, want)
	}
}

func fnvRef(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func TestSpreadEvenOverEqualPaths(t *testing.T) {
	const n = 20000
	for k := 2; k <= 4; k++ {
		tb, err := Compute(Self{Node: "a1", RG: "a"}, ecmpTopo(k).records())
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for i := 0; i < n; i++ {
			d, err := tb.Route(msgID(i), "d.test")
			if err != nil {
				t.Fatal(err)
			}
			if d.TotalCost != 5 || len(d.Path) != 3 || d.Path[1] != d.Connector.To {
				t.Fatalf("k=%d: bad decision\n%s", k, d.String())
			}
			counts[d.Connector.ID]++
		}
		if len(counts) != k {
			t.Fatalf("k=%d: used %d connectors: %v", k, len(counts), counts)
		}
		exp := n / k
		for id, c := range counts {
			if c < exp*9/10 || c > exp*11/10 {
				t.Errorf("k=%d: connector %s got %d of %d (expected about %d)", k, id, c, n, exp)
			}
		}
	}
	// Different domains of one message spread too.
	tb, _ := Compute(Self{Node: "a1", RG: "a"}, ecmpTopo(2).as("d", "*.d.test", 0).records())
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		d, _ := tb.Route("one-message-id", fmt.Sprintf("h%d.d.test", i))
		counts[d.Connector.ID]++
	}
	for id, c := range counts {
		if c < n/2*9/10 || c > n/2*11/10 {
			t.Errorf("per-domain spread: connector %s got %d of %d", id, c, n)
		}
	}
}

// TestSpreadBridgeheads: live target and source bridgeheads are spread
// independently of the connector choice; down ones are never chosen first.
func TestSpreadBridgeheads(t *testing.T) {
	const n = 30000
	tp := newTopo().rg("a", "a1", "a2", "a3", "a4").rg("b", "b1", "b2", "b3", "b4").as("b", "b.test", 0).
		link("ab1", "a", "b", 1, targets("b1:25", "b2:25", "b3:25", "b4:25"), pair("a1", "b4:25", false), pair("a1", "b1:25", true)).
		link("ab2", "a", "b", 1, sources("a2", "a3", "a4"), pair("a4", "b1:25", false), pair("a2", "b1:25", true))
	tb, err := Compute(Self{Node: "a1", RG: "a"}, tp.records())
	if err != nil {
		t.Fatal(err)
	}
	combos := map[string]int{}
	for i := 0; i < n; i++ {
		d, err := tb.Route(msgID(i), "b.test")
		if err != nil {
			t.Fatal(err)
		}
		first := d.NextHops[0]
		if !first.Up {
			t.Fatalf("down hop chosen first:\n%s", d.String())
		}
		last := d.NextHops[len(d.NextHops)-1]
		switch d.Connector.ID {
		case "ab1":
			if d.Kind != Remote || len(d.NextHops) != 4 || last.Addr != "b4:25" || last.Up {
				t.Fatalf("ab1: want 3 live targets then b4 down:\n%s", d.String())
			}
		case "ab2":
			if d.Kind != Intra || len(d.NextHops) != 3 || last.Node != "a4" {
				t.Fatalf("ab2: want Intra over a2,a3 then a4:\n%s", d.String())
			}
		}
		combos[d.Connector.ID+"/"+first.Addr]++
	}
	// ab1: 3 live targets (b4 down); ab2: 2 live sources (a4 down). Each
	// connector gets half of the messages, spread evenly over its hops.
	if len(combos) != 5 {
		t.Fatalf("combinations: %v", combos)
	}
	for k, c := range combos {
		exp := n / 2 / 3
		if k[:3] == "ab2" {
			exp = n / 2 / 2
		}
		if c < exp*85/100 || c > exp*115/100 {
			t.Errorf("%s: %d of %d, expected about %d", k, c, n, exp)
		}
	}
}
