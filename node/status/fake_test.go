package status

import (
	"sync"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/membership"
)

var testTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// meshRecords is the topology the tests draw: four routing groups, a
// redundant triangle a-b-c, a bridge c-d, two external connectors.
func meshRecords(abUp bool) []*linkstate.Record {
	pair := func(s, t string, up bool) linkstate.PairState {
		return linkstate.PairState{Source: s, Target: t, Up: up}
	}
	members := func(rg string) []linkstate.Member {
		return []linkstate.Member{
			{Name: rg + "2", SMTP: "127.0.0.1:25" + rg + "2", Priority: 1},
			{Name: rg + "1", SMTP: "127.0.0.1:25" + rg + "1", Priority: 2},
		}
	}
	rec := func(rg string, v linkstate.Version, domain string, conns ...linkstate.Connector) *linkstate.Record {
		return &linkstate.Record{
			RG: rg, Version: v, Master: rg + "1", IssuedAt: testTime, TTL: time.Hour, Members: members(rg),
			AddressSpaces: []linkstate.AddressSpace{{Pattern: domain, Cost: 1}}, Connectors: conns,
		}
	}
	return []*linkstate.Record{
		// Deliberately out of order: Graph must sort.
		rec("c", linkstate.Version{Epoch: 3, Major: 1, Minor: 4, User: 2}, "c.test",
			linkstate.Connector{ID: "cx", From: "c", Cost: 50, Smarthost: "127.0.0.1:2500",
				AddressSpaces: []linkstate.AddressSpace{{Pattern: "*", Cost: 100}}},
			linkstate.Connector{ID: "cb", From: "c", To: "b", Cost: 5, Pairs: []linkstate.PairState{pair("c1", "127.0.0.1:25b1", true)}},
			linkstate.Connector{ID: "ca", From: "c", To: "a", Cost: 30},
			linkstate.Connector{ID: "cd", From: "c", To: "d", Cost: 20, Bridge: true,
				Pairs: []linkstate.PairState{pair("c2", "127.0.0.1:25d1", false), pair("c1", "127.0.0.1:25d1", false)}},
		),
		rec("a", linkstate.Version{Epoch: 1, Major: 2, Minor: 7, User: 1}, "a.test",
			linkstate.Connector{ID: "ab", From: "a", To: "b", Cost: 10, SourceBridgeheads: []string{"a1", "a2"},
				Pairs: []linkstate.PairState{pair("a2", "127.0.0.1:25b1", abUp), pair("a1", "127.0.0.1:25b1", abUp)}},
			linkstate.Connector{ID: "ac", From: "a", To: "c", Cost: 30},
			linkstate.Connector{ID: "amx", From: "a", Cost: 60,
				AddressSpaces: []linkstate.AddressSpace{{Pattern: "*.example.org", Cost: 5}, {Pattern: "example.org", Cost: 5}}},
		),
		rec("b", linkstate.Version{Epoch: 2, Major: 1, Minor: 1, User: 1}, "b.test",
			linkstate.Connector{ID: "ba", From: "b", To: "a", Cost: 10},
			linkstate.Connector{ID: "bc", From: "b", To: "c", Cost: 5, Suppressed: true,
				Pairs: []linkstate.PairState{pair("b1", "127.0.0.1:25c1", true)}},
		),
		rec("d", linkstate.Version{Epoch: 1, Major: 1, Minor: 0, User: 0}, "d.test",
			linkstate.Connector{ID: "dc", From: "d", To: "c", Cost: 20, Bridge: true},
		),
	}
}

// fakeSource is a Source whose connector "ab" can be flipped.
type fakeSource struct {
	mu   sync.Mutex
	abUp bool
}

func (f *fakeSource) setAB(up bool) {
	f.mu.Lock()
	f.abUp = up
	f.mu.Unlock()
}

func (f *fakeSource) Snapshot() []*linkstate.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return meshRecords(f.abUp)
}

func (f *fakeSource) Digest() [32]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var d [32]byte
	for i := range d {
		d[i] = byte(i * 7)
	}
	if !f.abUp {
		d[0] = 0xff
	}
	return d
}

func (f *fakeSource) Self() (string, string) { return "a1", "a" }

func (f *fakeSource) View() membership.View {
	return membership.View{Master: "a1", Members: []membership.Member{
		{Name: "a1", Addr: "127.0.0.1:7946", Meta: membership.Meta{RG: "a", SMTP: "127.0.0.1:2525", LinkState: "127.0.0.1:6910", Priority: 2}},
		{Name: "a2", Addr: "127.0.0.1:7947", Meta: membership.Meta{RG: "a", SMTP: "127.0.0.1:2526", LinkState: "127.0.0.1:6911", Priority: 1}},
	}}
}

func (f *fakeSource) Queues() []QueueSummary {
	return []QueueSummary{
		{NextHop: "mx example.org", Messages: 1, OldestAge: 90 * time.Second},
		{NextHop: "b via 127.0.0.1:25b1", Messages: 12, OldestAge: 4*time.Minute + 3*time.Second},
	}
}

func (f *fakeSource) Penalties() map[string]float64 { return map[string]float64{"ab": 1500, "ac": 0} }

func (f *fakeSource) AdminStates() map[string]string { return map[string]string{"ac": "drain"} }
