package routing

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/meshd/meshd/linkstate"
)

var (
	// ErrNoRoute: no usable route matches the domain (the message waits).
	ErrNoRoute = errors.New("no route")
	// ErrInvalidDomain: the recipient domain is not a domain.
	ErrInvalidDomain = errors.New("invalid domain")
)

// Self identifies the node a table is computed for.
type Self struct {
	Node string // node name, as in linkstate.Member.Name
	RG   string // its routing group
}

// candidate is one address space that some route can deliver: an RG's
// own (ext == nil) or an external connector's.
type candidate struct {
	pattern string // normalised
	spec    int
	cost    uint32
	owner   int32                // RG index: the owning RG, or the external connector's RG
	ext     *linkstate.Connector // external connector, nil for an RG address space
	conn    int32                // index into Table.conns when ext is on the local RG, else -1
}

// localConn is a connector of the local RG that a route can start with,
// with its bridgeheads resolved for this node.
type localConn struct {
	c        *linkstate.Connector
	bit      int32 // first-hop bit for inter-RG connectors, -1 for external ones
	direct   bool  // this node sends over it itself
	sources  []Hop // other members to hand mail to when !direct; up ones first
	targets  []Hop // target bridgeheads (inter-RG) or smarthost; up ones first
	nsources int   // up entries at the start of sources
	ntargets int   // up entries at the start of targets
	usable   bool
}

// Table is an immutable routing table for one node: the shortest-path
// result over the RG graph plus an index of address spaces. It is safe for
// concurrent use.
type Table struct {
	self  Self
	g     *graph
	conns []localConn // inter-RG connectors in bit order, then usable external ones

	cands []candidate
	exact map[string][]int32 // domain -> candidates
	wild  map[string][]int32 // suffix of "*.suffix" -> candidates
	star  []int32

	gen uint64
}

// Compute builds the table for self from a set of link-state records (an
// LSDB snapshot). The records are read, never modified, and must not be
// modified afterwards: the table keeps pointers into them.
func Compute(self Self, records []*linkstate.Record) (*Table, error) {
	var c Computer
	return c.Compute(self, records)
}

// Computer computes tables and reuses its scratch buffers between runs.
// It is not safe for concurrent use; a Router owns one.
type Computer struct {
	scratch spfScratch
}

// Compute is the package-level Compute with reused buffers.
func (cp *Computer) Compute(self Self, records []*linkstate.Record) (*Table, error) {
	if self.RG == "" || self.Node == "" {
		return nil, fmt.Errorf("routing: compute table: node %q in RG %q: node and RG must be set", self.Node, self.RG)
	}
	g := buildGraph(self.RG, records)
	g.run(&cp.scratch)
	t := &Table{self: self, g: g}
	t.buildLocalConns()
	t.buildCandidates()
	return t, nil
}

// Self returns the node the table was computed for.
func (t *Table) Self() Self { return t.self }

// Generation counts the tables a Router has published (0 for a table
// computed directly).
func (t *Table) Generation() uint64 { return t.gen }

// Len returns the number of routing groups in the graph.
func (t *Table) Len() int { return len(t.g.names) }

func (t *Table) localRecord() *linkstate.Record { return t.g.recs[t.g.local] }

// buildLocalConns resolves the bridgeheads of every connector of the local
// RG for this node.
func (t *Table) buildLocalConns() {
	g := t.g
	t.conns = make([]localConn, 0, g.nbits+2)
	for b := int32(0); b < int32(g.nbits); b++ {
		e := g.localEdge(b)
		lc := localConn{c: e.conn, bit: b}
		t.resolveSources(&lc)
		t.resolveTargets(&lc, g.recs[e.to])
		lc.usable = (lc.direct || len(lc.sources) > 0) && len(lc.targets) > 0
		t.conns = append(t.conns, lc)
	}
	rec := t.localRecord()
	if rec == nil {
		return
	}
	first := len(t.conns)
	for ci := range rec.Connectors {
		c := &rec.Connectors[ci]
		if c.To != "" || (c.From != "" && c.From != rec.RG) || !c.Up() {
			continue
		}
		lc := localConn{c: c, bit: -1}
		t.resolveSources(&lc)
		if c.Smarthost != "" {
			lc.targets = []Hop{{Addr: c.Smarthost, Up: true}}
			lc.ntargets = 1
		}
		lc.usable = lc.direct || len(lc.sources) > 0
		t.conns = append(t.conns, lc)
	}
	ext := t.conns[first:]
	sort.Slice(ext, func(a, b int) bool { return ext[a].c.ID < ext[b].c.ID })
}

// resolveSources decides whether this node uses the connector itself or
// hands mail to another member that is one of its source bridgeheads.
func (t *Table) resolveSources(lc *localConn) {
	c := lc.c
	if len(c.SourceBridgeheads) == 0 {
		lc.direct = true // any member may use it
		return
	}
	self := t.self.Node
	selfListed, selfLive := false, false
	var members map[string]linkstate.Member
	if rec := t.localRecord(); rec != nil {
		members = make(map[string]linkstate.Member, len(rec.Members))
		for _, m := range rec.Members {
			members[m.Name] = m
		}
	}
	var up, down []Hop
	for _, s := range c.SourceBridgeheads {
		live := sourceLive(c, s)
		if s == self {
			selfListed, selfLive = true, live
			continue
		}
		m, ok := members[s]
		if !ok || m.SMTP == "" || slices.ContainsFunc(up, func(h Hop) bool { return h.Node == s }) ||
			slices.ContainsFunc(down, func(h Hop) bool { return h.Node == s }) {
			continue
		}
		if live {
			up = append(up, Hop{Node: s, Addr: m.SMTP, Up: true})
		} else {
			down = append(down, Hop{Node: s, Addr: m.SMTP})
		}
	}
	// Use it ourselves when our own pairs are up, or when we are listed and
	// no other source bridgehead is doing better.
	if selfListed && (selfLive || len(up) == 0) {
		lc.direct = true
		return
	}
	byNode := func(a, b Hop) int { return strings.Compare(a.Node, b.Node) }
	slices.SortFunc(up, byNode)
	slices.SortFunc(down, byNode)
	lc.sources = append(up, down...)
	lc.nsources = len(up)
}

// resolveTargets lists the target bridgeheads of an inter-RG connector as
// seen from this node; with none configured, every member of the target
// RG is one.
func (t *Table) resolveTargets(lc *localConn, to *linkstate.Record) {
	c := lc.c
	var up, down []Hop
	add := func(node, addr string) {
		if addr == "" || slices.ContainsFunc(up, func(h Hop) bool { return h.Addr == addr }) ||
			slices.ContainsFunc(down, func(h Hop) bool { return h.Addr == addr }) {
			return
		}
		h := Hop{Node: node, Addr: addr, Up: targetLive(c, t.self.Node, addr)}
		if h.Up {
			up = append(up, h)
		} else {
			down = append(down, h)
		}
	}
	if len(c.TargetBridgeheads) > 0 {
		for _, a := range c.TargetBridgeheads {
			add(memberBySMTP(to, a), a)
		}
	} else if to != nil {
		for _, m := range to.Members {
			add(m.Name, m.SMTP)
		}
	}
	byAddr := func(a, b Hop) int { return strings.Compare(a.Addr, b.Addr) }
	slices.SortFunc(up, byAddr)
	slices.SortFunc(down, byAddr)
	lc.targets = append(up, down...)
	lc.ntargets = len(up)
}

func memberBySMTP(r *linkstate.Record, addr string) string {
	if r == nil {
		return ""
	}
	for _, m := range r.Members {
		if m.SMTP == addr {
			return m.Name
		}
	}
	return ""
}

// sourceLive: a source bridgehead is live when one of its pairs is up, or
// when no pair of it has been observed.
func sourceLive(c *linkstate.Connector, s string) bool {
	seen := false
	for _, p := range c.Pairs {
		if p.Source == s {
			if p.Up {
				return true
			}
			seen = true
		}
	}
	return !seen
}

// targetLive: the pair (self, target) decides when it was observed;
// otherwise any observed pair towards the target; otherwise it is up.
func targetLive(c *linkstate.Connector, self, target string) bool {
	seen, anyUp := false, false
	for _, p := range c.Pairs {
		if p.Target != target {
			continue
		}
		if p.Source == self {
			return p.Up
		}
		seen = true
		anyUp = anyUp || p.Up
	}
	return !seen || anyUp
}

// buildCandidates indexes every address space of every RG and of every
// external connector.
func (t *Table) buildCandidates() {
	g := t.g
	t.exact = make(map[string][]int32, len(g.names))
	t.wild = make(map[string][]int32)
	localExt := make(map[*linkstate.Connector]int32)
	for i := g.nbits; i < len(t.conns); i++ {
		localExt[t.conns[i].c] = int32(i)
	}
	add := func(as linkstate.AddressSpace, owner int32, ext *linkstate.Connector) {
		kind, key, spec := parsePattern(as.Pattern)
		if kind == patInvalid {
			return
		}
		cd := candidate{pattern: patternString(kind, key), spec: spec, cost: as.Cost, owner: owner, ext: ext, conn: -1}
		if ext != nil && owner == g.local {
			if ci, ok := localExt[ext]; ok {
				cd.conn = ci
			}
		}
		idx := int32(len(t.cands))
		t.cands = append(t.cands, cd)
		switch kind {
		case patExact:
			t.exact[key] = append(t.exact[key], idx)
		case patWild:
			t.wild[key] = append(t.wild[key], idx)
		case patStar:
			t.star = append(t.star, idx)
		}
	}
	for i, r := range g.recs {
		if r == nil {
			continue
		}
		for _, as := range r.AddressSpaces {
			add(as, int32(i), nil)
		}
		for ci := range r.Connectors {
			c := &r.Connectors[ci]
			if c.To != "" || (c.From != "" && c.From != r.RG) {
				continue
			}
			for _, as := range c.AddressSpaces {
				add(as, int32(i), c)
			}
		}
	}
}

// candLess orders candidates of one level deterministically: by owner RG
// name, then external connector ID (RG address spaces first).
func (t *Table) candLess(a, b int32) bool {
	ca, cb := &t.cands[a], &t.cands[b]
	if na, nb := t.g.names[ca.owner], t.g.names[cb.owner]; na != nb {
		return na < nb
	}
	return extID(ca) < extID(cb)
}

func extID(c *candidate) string {
	if c.ext == nil {
		return ""
	}
	return c.ext.ID
}

func connRef(c *linkstate.Connector, from string) *ConnectorRef {
	if c == nil {
		return nil
	}
	if c.From != "" {
		from = c.From
	}
	return &ConnectorRef{ID: c.ID, From: from, To: c.To, Cost: c.Cost, Smarthost: c.Smarthost}
}
