package routing

import (
	"sync"

	"github.com/meshd/meshd/linkstate"
)

// infDist marks an unreachable routing group.
const infDist = ^uint64(0)

// edge is one usable connector between two routing groups, as the
// shortest-path loop reads it: kept small so that the loop stays in cache.
type edge struct {
	to   int32
	cost uint32
}

// graph is the RG graph with RGs indexed by int and the result of the
// shortest-path computation from the local RG. RG indices are stable
// across the tables of one Computer, so some indices may be holes (RGs
// that have gone); a hole has no record, no edges and is unreachable.
// A graph is immutable once built and run; a Table owns it.
type graph struct {
	names []string            // RG index -> name ("" for a hole); may share its array with the Computer
	recs  []*linkstate.Record // RG index -> record; nil for holes and a local RG without a record
	local int32
	nrgs  int // RGs present (not holes)

	start    []int32 // CSR: edges of RG i are edges[start[i]:start[i+1]]
	edges    []edge
	edgeFrom []int32
	edgeConn []*linkstate.Connector

	nbits int // first-hop connectors: the local RG's edges, bit = position in its range
	words int // uint64 words per first-hop bitset

	dist     []uint64 // path cost from local; infDist when unreachable
	fh       []uint64 // first-hop bitsets, words per RG
	predHead []int32  // RG -> head of its predecessor list (index into preds), -1 none
	preds    []pred

	indexOnce sync.Once
	index     map[string]int32 // name -> RG index, built on first use
}

func (g *graph) present(i int32) bool { return g.recs[i] != nil || i == g.local }

// lookup returns the index of a present RG.
func (g *graph) lookup(name string) (int32, bool) {
	g.indexOnce.Do(func() {
		g.index = make(map[string]int32, g.nrgs)
		for i, n := range g.names {
			if g.present(int32(i)) {
				g.index[n] = int32(i)
			}
		}
	})
	i, ok := g.index[name]
	return i, ok
}

// edgeCost is the Dijkstra weight of a connector. Costs are 1..100 by
// contract; a zero cost is read as 1 because zero-weight edges would let a
// vertex gain first hops after it was settled.
func edgeCost(c *linkstate.Connector) uint32 {
	if c.Cost == 0 {
		return 1
	}
	return c.Cost
}

// pred is one predecessor edge of an RG on a least-cost path, linked to
// the next one of the same RG.
type pred struct {
	edge, next int32
}

// spfScratch holds buffers that one shortest-path run needs and the next
// can reuse; nothing in it outlives a run.
type spfScratch struct {
	heap spfHeap
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
	g.preds = make([]pred, 0, n+n/2) // about one per RG, more with ties

	h := &s.heap
	h.reset(n)
	src := g.local
	srcStart := g.start[src]
	g.dist[src] = 0
	h.update(src, 0)
	for len(h.items) > 0 {
		it := h.pop()
		u, du := it.v, it.d
		fu := g.fh[int(u)*w : int(u)*w+w]
		for ei := g.start[u]; ei < g.start[u+1]; ei++ {
			e := g.edges[ei]
			v := e.to
			if h.pos[v] == settled {
				continue
			}
			nd := du + uint64(e.cost)
			dv := g.dist[v]
			if nd > dv {
				continue
			}
			fv := g.fh[int(v)*w : int(v)*w+w]
			if nd < dv {
				g.dist[v] = nd
				g.predHead[v] = -1
				clear(fv)
				h.update(v, nd)
			}
			g.preds = append(g.preds, pred{edge: ei, next: g.predHead[v]})
			g.predHead[v] = int32(len(g.preds) - 1)
			if u == src {
				b := ei - srcStart
				fv[b>>6] |= 1 << (uint(b) & 63)
			} else {
				for k := range fv {
					fv[k] |= fu[k]
				}
			}
		}
	}
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

// localEdge returns the edge index of first-hop bit b.
func (g *graph) localEdge(b int32) int32 { return g.start[g.local] + b }

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
		for p := g.predHead[v]; p >= 0; p = g.preds[p].next {
			ei := g.preds[p].edge
			from := g.edgeFrom[ei]
			if from == g.local {
				if ei-g.start[g.local] != b {
					continue
				}
			} else if !g.hasFirstHop(from, b) {
				continue
			}
			if best < 0 || g.lessEdge(ei, best) {
				best = ei
			}
		}
		if best < 0 { // cannot happen on a consistent result
			return nil
		}
		v = g.edgeFrom[best]
	}
	rev = append(rev, g.names[g.local])
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev
}

func (g *graph) lessEdge(a, b int32) bool {
	if na, nb := g.names[g.edgeFrom[a]], g.names[g.edgeFrom[b]]; na != nb {
		return na < nb
	}
	return g.edgeConn[a].ID < g.edgeConn[b].ID
}

// heapItem is a tentative distance of an RG.
type heapItem struct {
	d uint64
	v int32
}

// Heap positions of RGs that are not in the heap.
const (
	unseen  int32 = -1
	settled int32 = -2
)

// spfHeap is an indexed binary min-heap ordered by (d, v) with
// decrease-key, so it never holds more than one entry per RG. The RG index
// as second key keeps the settle order deterministic.
type spfHeap struct {
	items []heapItem
	pos   []int32 // RG -> index in items, or unseen / settled
}

func (h *spfHeap) reset(n int) {
	h.items = h.items[:0]
	if cap(h.pos) < n {
		h.pos = make([]int32, n)
	}
	h.pos = h.pos[:n]
	for i := range h.pos {
		h.pos[i] = unseen
	}
}

func (h *spfHeap) less(i, j int) bool {
	a, b := &h.items[i], &h.items[j]
	return a.d < b.d || (a.d == b.d && a.v < b.v)
}

func (h *spfHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.pos[h.items[i].v] = int32(i)
	h.pos[h.items[j].v] = int32(j)
}

// update inserts v with distance d or lowers its distance to d.
func (h *spfHeap) update(v int32, d uint64) {
	i := int(h.pos[v])
	if i < 0 {
		i = len(h.items)
		h.items = append(h.items, heapItem{d: d, v: v})
		h.pos[v] = int32(i)
	} else {
		h.items[i].d = d
	}
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.swap(i, p)
		i = p
	}
}

// pop removes the least item and marks its RG settled.
func (h *spfHeap) pop() heapItem {
	top := h.items[0]
	last := len(h.items) - 1
	h.swap(0, last)
	h.items = h.items[:last]
	h.pos[top.v] = settled
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h.items) {
			break
		}
		m := l
		if r := l + 1; r < len(h.items) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.swap(i, m)
		i = m
	}
	return top
}
