package routing

import (
	"errors"
	"slices"
	"strings"
	"time"

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

// Table is an immutable routing table for one node: the shortest-path
// result over the RG graph plus an index of address spaces. It is safe for
// concurrent use.
type Table struct {
	self  Self
	g     *graph
	idx   *asIndex    // shared read-only with other tables of the same Computer
	conns []localConn // inter-RG connectors in first-hop bit order, then usable external ones
	owned *Owned      // organisation address spaces known beyond the records; may be nil
	// draining holds the members of this routing group that drain (this
	// node's own name when it drains); nil when none does (drain.go).
	draining map[string]bool
	gen      uint64
	took     time.Duration // how long the Router took to compute it
}

// Self returns the node the table was computed for.
func (t *Table) Self() Self { return t.self }

// Generation counts the tables a Router has published (0 for a table
// computed directly).
func (t *Table) Generation() uint64 { return t.gen }

// ComputeDuration is how long the Router took to compute the table (SPF
// and the address-space index; 0 for a table computed directly).
func (t *Table) ComputeDuration() time.Duration { return t.took }

// Len returns the number of routing groups in the graph.
func (t *Table) Len() int { return t.g.nrgs }

func (t *Table) localRecord() *linkstate.Record { return t.g.recs[t.g.local] }

// candidate is one address space that some route can deliver to: an RG's
// own (conn == -1) or one of an external connector of that RG.
type candidate struct {
	pattern string // normalised
	spec    int
	cost    uint32
	owner   int32 // RG index: the owning RG, or the external connector's RG
	conn    int32 // position of the external connector in the owner's record, -1 for the RG's own
	next    int32 // next candidate of the same pattern, -1 at the end
}

// asIndex finds the candidates of a domain: per exact domain, per
// wildcard suffix and for "*", a chain of candidates in a fixed order
// (owner RG name, then connector ID).
type asIndex struct {
	cands []candidate
	exact map[string]int32 // domain -> first candidate
	wild  map[string]int32 // suffix of "*.suffix" -> first candidate
	star  int32
}

// buildIndex indexes every address space of every RG and of every
// external connector of the graph's records.
func buildIndex(g *graph) *asIndex {
	x := &asIndex{exact: make(map[string]int32, g.nrgs), wild: make(map[string]int32), star: -1}
	for i, r := range g.recs {
		if r == nil {
			continue
		}
		for _, as := range r.AddressSpaces {
			x.add(g, as, int32(i), -1)
		}
		for k := range r.Connectors {
			if isExternal(r, &r.Connectors[k]) {
				for _, as := range r.Connectors[k].AddressSpaces {
					x.add(g, as, int32(i), int32(k))
				}
			}
		}
	}
	return x
}

func (x *asIndex) add(g *graph, as linkstate.AddressSpace, owner, conn int32) {
	kind, key, spec := parsePattern(as.Pattern)
	if kind == patInvalid {
		return // the LSDB validates patterns; a bad one matches nothing
	}
	idx := int32(len(x.cands))
	x.cands = append(x.cands, candidate{pattern: patternString(kind, key), spec: spec, cost: as.Cost, owner: owner, conn: conn, next: -1})
	switch kind {
	case patExact:
		x.exact[key] = x.insert(g, x.headOf(x.exact, key), idx)
	case patWild:
		x.wild[key] = x.insert(g, x.headOf(x.wild, key), idx)
	case patStar:
		x.star = x.insert(g, x.star, idx)
	}
}

func (x *asIndex) headOf(m map[string]int32, key string) int32 {
	if h, ok := m[key]; ok {
		return h
	}
	return -1
}

// insert puts idx into the chain at head in order and returns the head.
func (x *asIndex) insert(g *graph, head, idx int32) int32 {
	if head < 0 || x.less(g, idx, head) {
		x.cands[idx].next = head
		return idx
	}
	p := head
	for x.cands[p].next >= 0 && !x.less(g, idx, x.cands[p].next) {
		p = x.cands[p].next
	}
	x.cands[idx].next = x.cands[p].next
	x.cands[p].next = idx
	return head
}

// less orders candidates: owner RG name, then external connector ID (an
// RG's own address spaces first).
func (x *asIndex) less(g *graph, a, b int32) bool {
	ca, cb := &x.cands[a], &x.cands[b]
	if na, nb := g.names[ca.owner], g.names[cb.owner]; na != nb {
		return na < nb
	}
	return candConnID(g, ca) < candConnID(g, cb)
}

func candConnID(g *graph, c *candidate) string {
	if c.conn < 0 {
		return ""
	}
	return g.recs[c.owner].Connectors[c.conn].ID
}

// ext returns the external connector of a candidate in this table's
// records, or nil for an RG's own address space.
func (t *Table) ext(c *candidate) *linkstate.Connector {
	if c.conn < 0 {
		return nil
	}
	return &t.g.recs[c.owner].Connectors[c.conn]
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

// localExt returns the index in t.conns of a local external connector,
// or -1 when it is down or unknown.
func (t *Table) localExt(c *linkstate.Connector) int32 {
	for i := t.g.nbits; i < len(t.conns); i++ {
		if t.conns[i].c == c {
			return int32(i)
		}
	}
	return -1
}

// buildLocalConns resolves the bridgeheads of every connector of the local
// RG for this node.
func (t *Table) buildLocalConns() {
	g := t.g
	t.conns = make([]localConn, 0, g.nbits+2)
	for b := int32(0); b < int32(g.nbits); b++ {
		ei := g.localEdge(b)
		lc := localConn{c: g.edgeConn[ei], bit: b}
		t.resolveSources(&lc)
		t.resolveTargets(&lc, g.recs[g.edges[ei].to])
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
		if !isExternal(rec, c) || !c.Up() {
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
	slices.SortFunc(ext, func(a, b localConn) int { return strings.Compare(a.c.ID, b.c.ID) })
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
	var members []linkstate.Member
	if rec := t.localRecord(); rec != nil {
		members = rec.Members
	}
	var up, down []Hop
	seen := func(s string) bool {
		return slices.ContainsFunc(up, func(h Hop) bool { return h.Node == s }) ||
			slices.ContainsFunc(down, func(h Hop) bool { return h.Node == s })
	}
	for _, s := range c.SourceBridgeheads {
		live := sourceLive(c, s)
		if s == self {
			selfListed, selfLive = true, live
			continue
		}
		if t.draining[s] {
			continue // it takes no mail: it hands its own to the others
		}
		mi := slices.IndexFunc(members, func(m linkstate.Member) bool { return m.Name == s })
		if mi < 0 || members[mi].SMTP == "" || seen(s) {
			continue
		}
		if live {
			up = append(up, Hop{Node: s, Addr: members[mi].SMTP, Up: true})
		} else {
			down = append(down, Hop{Node: s, Addr: members[mi].SMTP})
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

func connRef(c *linkstate.Connector, from string) *ConnectorRef {
	if c == nil {
		return nil
	}
	if c.From != "" {
		from = c.From
	}
	return &ConnectorRef{ID: c.ID, From: from, To: c.To, Cost: c.Cost, Smarthost: c.Smarthost}
}
