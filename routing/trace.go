package routing

import (
	"container/heap"
	"fmt"
	"strings"
)

// PathOption is one way out of the local routing group towards the
// destination of a decision: the best path that starts with one local
// connector, whatever that connector's state, with why it lost.
type PathOption struct {
	Connector string   `json:"connector"`
	To        string   `json:"to"`
	Cost      uint32   `json:"cost"`           // the connector's own cost
	State     string   `json:"state"`          // up, down, suppressed, no-live-source
	Path      []string `json:"path,omitempty"` // RGs, from this one to the destination
	PathCost  uint64   `json:"path_cost"`      // along Path (0 when there is none)
	TotalCost uint64   `json:"total_cost"`     // PathCost plus the address space's cost
	Chosen    bool     `json:"chosen,omitempty"`
	Reason    Reason   `json:"reason,omitempty"` // why it lost; zero when chosen
}

func (p PathOption) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "via %s (to %s, cost %d, %s)", p.Connector, p.To, p.Cost, p.State)
	if len(p.Path) > 0 {
		fmt.Fprintf(&b, ": %s total %d", strings.Join(p.Path, " -> "), p.TotalCost)
	}
	if p.Chosen {
		b.WriteString(": chosen")
	} else {
		fmt.Fprintf(&b, ": %s", p.Reason)
	}
	return b.String()
}

// Trace is Route plus Decision.Paths: for each connector of this routing
// group to another one, the least-cost path to the decision's destination
// group that starts with it (down connectors included, with their path as
// it would be), so a trace shows the direct connector that lost to a
// cheaper transit path, and why. It costs one shortest-path run per
// connector, which is why Route does not do it.
func (t *Table) Trace(msgID, domain string) (Decision, error) {
	d, err := t.Route(msgID, domain)
	dest := d.DestRG
	asCost := d.AddressSpaceCost
	if dest == "" {
		for _, a := range d.Alternatives {
			if a.Reason != ReasonLessSpecific && a.Reason != ReasonOwnedDomain {
				dest, asCost = a.RG, a.AddressSpaceCost
				break
			}
		}
	}
	if dest == "" || dest == t.self.RG {
		return d, err
	}
	di, ok := t.g.lookup(dest)
	rec := t.localRecord()
	if rec == nil {
		return d, err
	}
	best := infDist
	var opts []PathOption
	for ci := range rec.Connectors {
		c := &rec.Connectors[ci]
		if c.To == "" || c.To == rec.RG {
			continue
		}
		p := PathOption{Connector: c.ID, To: c.To, Cost: edgeCost(c), State: "up"}
		switch {
		case dampened(c):
			p.State, p.Reason = "suppressed", ReasonSuppressed
		case !c.Up():
			p.State, p.Reason = "down", ReasonConnectorDown
		case !hasLiveSource(c, rec):
			p.State, p.Reason = "no-live-source", ReasonNoBridgehead
		}
		if ti, tok := t.g.lookup(c.To); ok && tok {
			if path, cost, found := t.g.pathAvoiding(ti, di, t.g.local); found {
				p.Path = append([]string{t.self.RG}, path...)
				p.PathCost = uint64(p.Cost) + cost
				p.TotalCost = p.PathCost + asCost
			}
		}
		if p.Path == nil && p.Reason == 0 {
			p.Reason = ReasonUnreachable
		}
		if p.Reason == 0 {
			best = min(best, p.TotalCost)
		}
		if d.Connector != nil && d.Connector.ID == c.ID && d.Kind != NoRoute {
			p.Chosen = true
		}
		opts = append(opts, p)
	}
	for i := range opts {
		p := &opts[i]
		switch {
		case p.Chosen:
			p.Reason = 0
		case p.Reason != 0:
		case p.TotalCost > best:
			p.Reason = ReasonHigherCost
		default:
			p.Reason = ReasonTieBreak
		}
	}
	d.Paths = opts
	return d, err
}

// pathAvoiding is a shortest path from src to dst over the up connectors
// of the graph that never passes through avoid (the local RG: a path
// that comes back is no way out). It returns the RGs from src to dst
// and the cost.
func (g *graph) pathAvoiding(src, dst, avoid int32) ([]string, uint64, bool) {
	n := len(g.names)
	dist := make([]uint64, n)
	prev := make([]int32, n)
	for i := range dist {
		dist[i], prev[i] = infDist, -1
	}
	dist[src] = 0
	pq := &distHeap{{v: src}}
	for pq.Len() > 0 {
		it := heap.Pop(pq).(distItem)
		if it.d > dist[it.v] {
			continue
		}
		if it.v == dst {
			break
		}
		for ei := g.start[it.v]; ei < g.start[it.v+1]; ei++ {
			e := g.edges[ei]
			if e.to == avoid {
				continue
			}
			if nd := it.d + uint64(e.cost); nd < dist[e.to] {
				dist[e.to], prev[e.to] = nd, it.v
				heap.Push(pq, distItem{v: e.to, d: nd})
			}
		}
	}
	if dist[dst] == infDist {
		return nil, 0, false
	}
	var rev []string
	for v := dst; v >= 0; v = prev[v] {
		rev = append(rev, g.names[v])
		if v == src {
			break
		}
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev, dist[dst], true
}

type distItem struct {
	v int32
	d uint64
}

type distHeap []distItem

func (h distHeap) Len() int { return len(h) }
func (h distHeap) Less(i, j int) bool {
	return h[i].d < h[j].d || (h[i].d == h[j].d && h[i].v < h[j].v)
}
func (h distHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *distHeap) Push(x any)   { *h = append(*h, x.(distItem)) }
func (h *distHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
