package routing

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A draining node hands every decision to another member of its group;
// the decision it replaces stays readable.
func TestDrainHandsOffToMembers(t *testing.T) {
	tp := newTopo().rg("a", "a1", "a2", "a3").rg("b", "b1").
		as("a", "a.test", 1).as("b", "b.test", 2).
		link("ab", "a", "b", 10, targets("b1:25")).
		ext("net", "a", "smart:25", "*", 50)
	self := Self{Node: "a1", RG: "a"}
	var cp Computer
	tab, err := cp.ComputeDraining(self, tp.records(), []string{"a1"})
	if err != nil {
		t.Fatal(err)
	}
	if !tab.Draining() {
		t.Fatal("table of a draining node: Draining() false")
	}
	for _, tc := range []struct {
		domain  string
		instead Kind
	}{{"a.test", Local}, {"b.test", Remote}, {"elsewhere.example", External}} {
		d, err := tab.Route("m1", tc.domain)
		if err != nil {
			t.Fatalf("%s: %v", tc.domain, err)
		}
		if d.Kind != Intra || d.Drain == nil || d.Drain.Instead != tc.instead {
			t.Fatalf("%s: kind %v drain %+v, want intra instead of %v", tc.domain, d.Kind, d.Drain, tc.instead)
		}
		for _, h := range d.NextHops {
			if h.Node == "a1" || !strings.HasPrefix(h.Node, "a") {
				t.Fatalf("%s: next hop %v is not another member of a", tc.domain, h)
			}
		}
		if len(d.NextHops) != 2 {
			t.Fatalf("%s: next hops %v, want a2 and a3", tc.domain, d.NextHops)
		}
		if !strings.Contains(d.String(), "draining: a1 hands this mail to another member of a instead of "+tc.instead.String()) {
			t.Fatalf("%s: explanation lacks the hand-off:\n%s", tc.domain, d.String())
		}
	}
	// The remote decision keeps its path, so a trace says where it goes.
	if d, _ := tab.Route("m1", "b.test"); len(d.Path) != 2 || d.DestRG != "b" {
		t.Fatalf("hand-off of b.test lost the path: %+v", d)
	}
	// Spread over both members by the message hash.
	seen := map[string]bool{}
	for i := range 64 {
		d, _ := tab.Route(msgID(i), "b.test")
		seen[d.NextHops[0].Node] = true
	}
	if !seen["a2"] || !seen["a3"] {
		t.Fatalf("hand-offs over 64 messages went only to %v", seen)
	}
}

// With every other member draining too, the mail waits and says why;
// an invalid domain keeps its own refusal.
func TestDrainNoMemberWaits(t *testing.T) {
	tp := newTopo().rg("a", "a1", "a2").as("a", "a.test", 1)
	var cp Computer
	tab, err := cp.ComputeDraining(Self{Node: "a1", RG: "a"}, tp.records(), []string{"a1", "a2"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := tab.Route("m1", "a.test")
	if !errors.Is(err, ErrNoRoute) || d.Kind != NoRoute || d.Refused != ReasonDraining {
		t.Fatalf("all draining: kind %v refused %v err %v", d.Kind, d.Refused, err)
	}
	if !strings.Contains(d.String(), "also draining, left out: a2") {
		t.Fatalf("explanation does not name the other drainer:\n%s", d.String())
	}
	if d, err := tab.Route("m1", "not a domain"); !errors.Is(err, ErrInvalidDomain) || d.Refused != ReasonInvalidDomain {
		t.Fatalf("invalid domain while draining: %v %v", d.Refused, err)
	}
}

// The other members leave a draining member out of their next hops.
func TestDrainingMemberIsNoSource(t *testing.T) {
	tp := newTopo().rg("a", "a1", "a2", "a3").rg("b", "b1").as("b", "b.test", 1).
		link("ab", "a", "b", 10, sources("a1", "a2"), targets("b1:25"))
	var cp Computer
	self := Self{Node: "a3", RG: "a"}
	before, _ := cp.Compute(self, tp.records())
	after, _ := cp.ComputeDraining(self, tp.records(), []string{"a1"})
	all := map[string]bool{}
	for i := range 64 {
		d, _ := before.Route(msgID(i), "b.test")
		all[d.NextHops[0].Node] = true
		d, err := after.Route(msgID(i), "b.test")
		if err != nil || d.Kind != Intra || len(d.NextHops) != 1 || d.NextHops[0].Node != "a2" {
			t.Fatalf("a1 draining: %v %v next hops %v, want only a2", d.Kind, err, d.NextHops)
		}
	}
	if !all["a1"] {
		t.Fatalf("without the drain a1 never was a next hop (%v): the test shows nothing", all)
	}
	if after.Draining() {
		t.Fatal("a3 does not drain")
	}
}

// SetDraining publishes a table computed with the members that drain.
func TestRouterSetDraining(t *testing.T) {
	tp := newTopo().rg("a", "a1", "a2").as("a", "a.test", 1)
	clk := newFakeClock()
	r, err := NewRouter(Self{Node: "a1", RG: "a"}, nil, RouterOptions{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Update(tp.records())
	waitTable(t, r, clk, func(tab *Table) bool { return tab.Len() == 1 })
	r.SetDraining([]string{"a1"})
	waitTable(t, r, clk, func(tab *Table) bool { return tab.Draining() })
	if d, _ := r.Table().Route("m", "a.test"); d.Kind != Intra || d.NextHops[0].Node != "a2" {
		t.Fatalf("after SetDraining: %v %v", d.Kind, d.NextHops)
	}
	r.SetDraining(nil)
	waitTable(t, r, clk, func(tab *Table) bool { return !tab.Draining() })
	if d, _ := r.Table().Route("m", "a.test"); d.Kind != Local {
		t.Fatalf("after undrain: %v", d.Kind)
	}
}

func waitTable(t *testing.T, r *Router, clk *fakeClock, ok func(*Table) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(r.Table()) {
		if time.Now().After(deadline) {
			t.Fatal("no such table published")
		}
		clk.Advance(time.Second)
		time.Sleep(time.Millisecond) // let the router's goroutine run
	}
}
