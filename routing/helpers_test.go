package routing

import (
	"fmt"
	"sort"

	"github.com/meshd/meshd/linkstate"
)

// topo builds link-state records for tests.
type topo struct {
	recs map[string]*linkstate.Record
}

func newTopo() *topo { return &topo{recs: map[string]*linkstate.Record{}} }

// rg adds (or returns) an RG; members get SMTP address "<name>:25".
func (tp *topo) rg(name string, members ...string) *topo {
	r := tp.get(name)
	for _, m := range members {
		r.Members = append(r.Members, linkstate.Member{Name: m, SMTP: m + ":25"})
	}
	return tp
}

func (tp *topo) get(name string) *linkstate.Record {
	r, ok := tp.recs[name]
	if !ok {
		r = &linkstate.Record{RG: name, Version: linkstate.Version{Epoch: 1}}
		tp.recs[name] = r
	}
	return r
}

// as gives an RG an address space it delivers locally.
func (tp *topo) as(rg, pattern string, cost uint32) *topo {
	r := tp.get(rg)
	r.AddressSpaces = append(r.AddressSpaces, linkstate.AddressSpace{Pattern: pattern, Cost: cost})
	return tp
}

// link adds connector id from -> to; mods adjust it.
func (tp *topo) link(id, from, to string, cost uint32, mods ...func(*linkstate.Connector)) *topo {
	tp.get(to)
	c := linkstate.Connector{ID: id, From: from, To: to, Cost: cost}
	for _, m := range mods {
		m(&c)
	}
	r := tp.get(from)
	r.Connectors = append(r.Connectors, c)
	return tp
}

// ext adds an external connector with one address space.
func (tp *topo) ext(id, from, smarthost, pattern string, cost uint32, mods ...func(*linkstate.Connector)) *topo {
	c := linkstate.Connector{ID: id, From: from, Cost: 1, Smarthost: smarthost,
		AddressSpaces: []linkstate.AddressSpace{{Pattern: pattern, Cost: cost}}}
	for _, m := range mods {
		m(&c)
	}
	r := tp.get(from)
	r.Connectors = append(r.Connectors, c)
	return tp
}

func (tp *topo) records() []*linkstate.Record {
	names := make([]string, 0, len(tp.recs))
	for n := range tp.recs {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*linkstate.Record, 0, len(names))
	for _, n := range names {
		out = append(out, tp.recs[n])
	}
	return out
}

func down(c *linkstate.Connector) { c.Suppressed = true }

func sources(s ...string) func(*linkstate.Connector) {
	return func(c *linkstate.Connector) { c.SourceBridgeheads = s }
}

func targets(t ...string) func(*linkstate.Connector) {
	return func(c *linkstate.Connector) { c.TargetBridgeheads = t }
}

func pair(src, dst string, up bool) func(*linkstate.Connector) {
	return func(c *linkstate.Connector) {
		c.Pairs = append(c.Pairs, linkstate.PairState{Source: src, Target: dst, Up: up})
	}
}

func msgID(i int) string { return fmt.Sprintf("msg%08d.test", i) }
