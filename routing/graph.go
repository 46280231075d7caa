package routing

import (
	"sort"

	"github.com/meshd/meshd/linkstate"
)

// infDist marks an unreachable routing group.
const infDist = ^uint64(0)

// edge is one usable connector between two routing groups.
type edge struct {
	from, to int32
	bit      int32 // first-hop bit when from is the local RG, else -1
	cost     uint64
	conn     *linkstate.Connector
}

// graph is the RG graph indexed by int and the result of the shortest-path
// computation from the local RG. It is immutable once built and run; a
// Table owns it.
type graph struct {
	names []string            // RG index -> name
	recs  []*linkstate.Record // RG index -> record; nil for a local RG without a record
	index map[string]int32    // name -> RG index
	local int32

	start []int32 // CSR: edges of RG i are edges[start[i]:start[i+1]]
	edges []edge

	nbits int // first-hop connectors (usable inter-RG connectors of the local RG)
	words int // uint64 words per first-hop bitset

	dist     []uint64 // path cost from local; infDist when unreachable
	fh       []uint64 // first-hop bitsets, words per RG
	predHead []int32  // RG -> head of its predecessor list (index into predEdge), -1 none
	predNext []int32
	predEdge []int32 // edge index of each predecessor entry
}

// buildGraph indexes the live records and their usable connectors. Records
// that are nil, tombstones or unnamed are skipped; of two records for one
// RG the newer version wins. The local RG is always a vertex, even before
// its own record exists.
func buildGraph(local string, records []*linkstate.Record) *graph {
	g := &graph{
		names: make([]string, 0, len(records)+1),
		recs:  make([]*linkstate.Record, 0, len(records)+1),
		index: make(map[string]int32, len(records)+1),
	}
	nconn := 0
	for _, r := range records {
		if r == nil || r.Tombstone || r.RG == "" {
			continue
		}
		if i, ok := g.index[r.RG]; ok {
			if r.Version.Compare(g.recs[i].Version) > 0 {
				nconn += len(r.Connectors) - len(g.recs[i].Connectors)
				g.recs[i] = r
			}
			continue
		}
		g.index[r.RG] = int32(len(g.names))
		g.names = append(g.names, r.RG)
		g.recs = append(g.recs, r)
		nconn += len(r.Connectors)
	}
	li, ok := g.index[local]
	if !ok {
		li = int32(len(g.names))
		g.index[local] = li
		g.names = append(g.names, local)
		g.recs = append(g.recs, nil)
	}
	g.local = li

	n := len(g.names)
	g.start = make([]int32, n+1)
	g.edges = make([]edge, 0, nconn)
	for i, r := range g.recs {
		g.start[i] = int32(len(g.edges))
		if r == nil {
			continue
		}
		for ci := range r.Connectors {
			c := &r.Connectors[ci]
			if c.To == "" || c.To == r.RG || (c.From != "" && c.From != r.RG) || !c.Up() {
				continue
			}
			j, ok := g.index[c.To]
			if !ok {
				continue
			}
			g.edges = append(g.edges, edge{from: int32(i), to: j, bit: -1, cost: edgeCost(c), conn: c})
		}
	}
	g.start[n] = int32(len(g.edges))

	// First-hop bits in connector-ID order, so that bit order (and with it
	// every tie-break) does not depend on the order of the record.
	le := g.edges[g.start[li]:g.start[li+1]]
	sort.Slice(le, func(a, b int) bool { return le[a].conn.ID < le[b].conn.ID })
	for k := range le {
		le[k].bit = int32(k)
	}
	g.nbits = len(le)
	g.words = max(1, (g.nbits+63)/64)
	return g
}

// edgeCost is the Dijkstra weight of a connector. Costs are 1..100 by
// contract; a zero cost is read as 1 because zero-weight edges would let a
// vertex gain first hops after it was settled.
func edgeCost(c *linkstate.Connector) uint64 {
	if c.Cost == 0 {
		return 1
	}
	return uint64(c.Cost)
}

// spfScratch holds buffers that one shortest-path run needs and the next
// can reuse; nothing in it outlives a run.
type spfScratch struct {
	heap minHeap
	done []bool
}

// run computes, from the local RG, every RG's least path cost, the set of
// local connectors that start a least-cost path to it (ECMP first hops)
// and its predecessor edges on least-cost paths.
func (g *graph) run(s *spfScratch) {
	n := len(g.names)
	w := g.words
	g.dist = make([]uint64, n)
	for i := range g.dist {
		g.dist[i] = infDist
	}
	g.fh = make([]uint64, n*w)
	g.predHead = make([]int32, n)
	for i := range g.predHead {
		g.predHead[i] = -1
	}
	g.predNext = make([]int32, 0, len(g.edges))
	g.predEdge = make([]int32, 0, len(g.edges))

	if cap(s.done) < n {
		s.done = make([]bool, n)
	}
	done := s.done[:n]
	clear(done)
	h := s.heap[:0]

	src := g.local
	g.dist[src] = 0
	h.push(heapItem{d: 0, v: src})
	for len(h) > 0 {
		it := h.pop()
		u := it.v
		if done[u] {
			continue
		}
		done[u] = true
		du := g.dist[u]
		fu := g.fh[int(u)*w : int(u)*w+w]
		for ei := g.start[u]; ei < g.start[u+1]; ei++ {
			e := &g.edges[ei]
			v := e.to
			if done[v] {
				continue
			}
			nd := du + e.cost
			dv := g.dist[v]
			if nd > dv {
				continue
			}
			fv := g.fh[int(v)*w : int(v)*w+w]
			if nd < dv {
				g.dist[v] = nd
				g.predHead[v] = -1
				clear(fv)
				h.push(heapItem{d: nd, v: v})
			}
			g.predEdge = append(g.predEdge, ei)
			g.predNext = append(g.predNext, g.predHead[v])
			g.predHead[v] = int32(len(g.predEdge) - 1)
			if u == src {
				fv[e.bit>>6] |= 1 << (uint(e.bit) & 63)
			} else {
				for k := range fv {
					fv[k] |= fu[k]
				}
			}
		}
	}
	s.heap = h[:0]
}

// reachable reports whether RG i has a path from the local RG.
func (g *graph) reachable(i int32) bool { return g.dist[i] != infDist }

// hasFirstHop reports whether local connector bit b starts a least-cost
// path to RG i.
func (g *graph) hasFirstHop(i int32, b int32) bool {
	return g.fh[int(i)*g.words+int(b>>6)]&(1<<(uint(b)&63)) != 0
}

// firstHopBits appends the first-hop bits of RG i to dst in ascending order.
func (g *graph) firstHopBits(dst []int32, i int32) []int32 {
	for b := int32(0); b < int32(g.nbits); b++ {
		if g.hasFirstHop(i, b) {
			dst = append(dst, b)
		}
	}
	return dst
}

// localEdge returns the local connector with first-hop bit b.
func (g *graph) localEdge(b int32) *edge { return &g.edges[g.start[g.local]+b] }

// path returns one least-cost RG path from the local RG to dst that starts
// with first-hop bit b: at each step back it takes the qualifying
// predecessor with the smallest (RG name, connector ID), so the answer does
// not depend on record order. It returns nil when b does not lead to dst.
func (g *graph) path(dst int32, b int32) []string {
	if dst == g.local {
		return []string{g.names[dst]}
	}
	if !g.reachable(dst) || !g.hasFirstHop(dst, b) {
		return nil
	}
	var rev []string
	v := dst
	for v != g.local {
		rev = append(rev, g.names[v])
		best := int32(-1)
		for p := g.predHead[v]; p >= 0; p = g.predNext[p] {
			e := &g.edges[g.predEdge[p]]
			if e.from == g.local {
				if e.bit != b {
					continue
				}
			} else if !g.hasFirstHop(e.from, b) {
				continue
			}
			if best < 0 || g.lessEdge(e, &g.edges[best]) {
				best = g.predEdge[p]
			}
		}
		if best < 0 { // cannot happen on a consistent result
			return nil
		}
		v = g.edges[best].from
	}
	rev = append(rev, g.names[g.local])
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev
}

func (g *graph) lessEdge(a, b *edge) bool {
	if na, nb := g.names[a.from], g.names[b.from]; na != nb {
		return na < nb
	}
	return a.conn.ID < b.conn.ID
}

// heapItem is a tentative distance of an RG; the heap allows duplicates
// (lazy deletion) instead of decrease-key.
type heapItem struct {
	d uint64
	v int32
}

// minHeap is a binary min-heap ordered by (d, v); the RG index as second
// key keeps the settle order deterministic.
type minHeap []heapItem

func (h minHeap) less(i, j int) bool {
	return h[i].d < h[j].d || (h[i].d == h[j].d && h[i].v < h[j].v)
}

func (h *minHeap) push(it heapItem) {
	*h = append(*h, it)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *minHeap) pop() heapItem {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(a) {
			break
		}
		m := l
		if r := l + 1; r < len(a) && a.less(r, l) {
			m = r
		}
		if !a.less(m, i) {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}
