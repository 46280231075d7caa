package routing

import (
	"cmp"
	"slices"
	"strings"
)

// FirstHop is a local connector that starts a least-cost path.
type FirstHop struct {
	Connector string `json:"connector"`
	To        string `json:"to"`
}

// RGRoute is the shortest-path result for one routing group.
type RGRoute struct {
	RG        string     `json:"rg"`
	Reachable bool       `json:"reachable"`
	Cost      uint64     `json:"cost"`
	FirstHops []FirstHop `json:"first_hops,omitempty"` // all equal-cost first hops (ECMP)
	Path      []string   `json:"path,omitempty"`       // one least-cost path, via FirstHops[0]
}

// RouteEntry is one address space and how this node reaches it, as
// `meshctl routes` lists it.
type RouteEntry struct {
	AddressSpace     string     `json:"address_space"`
	RG               string     `json:"rg"`             // owner RG, or the RG of the external connector
	Exit             string     `json:"exit,omitempty"` // external connector ID
	Smarthost        string     `json:"smarthost,omitempty"`
	Up               bool       `json:"up"` // external connector up (always true for an RG's own)
	Reachable        bool       `json:"reachable"`
	PathCost         uint64     `json:"path_cost"`
	AddressSpaceCost uint64     `json:"address_space_cost"`
	TotalCost        uint64     `json:"total_cost"`
	FirstHops        []FirstHop `json:"first_hops,omitempty"`
	Path             []string   `json:"path,omitempty"`
	// Owner is set for an organisation domain whose group has no record
	// in the table: "record-absent" (its mail waits) or "removed" (its
	// mail fails).
	Owner string `json:"owner,omitempty"`
}

// RGs lists every routing group with its path cost and ECMP first hops,
// sorted by name.
func (t *Table) RGs() []RGRoute {
	g := t.g
	out := make([]RGRoute, 0, len(g.names))
	for i, name := range g.names {
		if g.present(int32(i)) {
			out = append(out, t.rgRoute(int32(i), name))
		}
	}
	slices.SortFunc(out, func(a, b RGRoute) int { return strings.Compare(a.RG, b.RG) })
	return out
}

// RG returns the shortest-path result for one routing group.
func (t *Table) RG(name string) (RGRoute, bool) {
	i, ok := t.g.lookup(name)
	if !ok {
		return RGRoute{RG: name}, false
	}
	return t.rgRoute(i, name), true
}

func (t *Table) rgRoute(i int32, name string) RGRoute {
	g := t.g
	r := RGRoute{RG: name, Reachable: g.reachable(i)}
	if !r.Reachable {
		return r
	}
	r.Cost = g.dist[i]
	r.FirstHops = t.firstHops(i)
	if i == g.local {
		r.Path = []string{name}
	} else if len(r.FirstHops) > 0 {
		r.Path = g.path(i, t.g.firstHopBits(nil, i)[0])
	}
	return r
}

func (t *Table) firstHops(i int32) []FirstHop {
	var fh []FirstHop
	if i == t.g.local {
		return nil
	}
	for _, b := range t.g.firstHopBits(nil, i) {
		ei := t.g.localEdge(b)
		fh = append(fh, FirstHop{Connector: t.g.edgeConn[ei].ID, To: t.g.names[t.g.edges[ei].to]})
	}
	return fh
}

// Routes lists every address space known to the table, most specific
// first, then by pattern, reachable before unreachable, and total cost.
func (t *Table) Routes() []RouteEntry {
	g := t.g
	out := make([]RouteEntry, 0, len(t.idx.cands))
	for ci := range t.idx.cands {
		c := &t.idx.cands[ci]
		ext := t.ext(c)
		e := RouteEntry{
			AddressSpace:     c.pattern,
			RG:               g.names[c.owner],
			Exit:             candConnID(g, c),
			Up:               ext == nil || ext.Up(),
			Reachable:        g.reachable(c.owner),
			AddressSpaceCost: uint64(c.cost),
		}
		if ext != nil {
			e.Smarthost = ext.Smarthost
		}
		if e.Reachable {
			e.PathCost = g.dist[c.owner]
			e.TotalCost = e.PathCost + e.AddressSpaceCost
			e.FirstHops = t.firstHops(c.owner)
			if c.owner == g.local {
				e.Path = []string{g.names[c.owner]}
			} else {
				e.Path = g.path(c.owner, g.firstHopBits(nil, c.owner)[0])
			}
		}
		out = append(out, e)
	}
	if t.owned != nil {
		for _, m := range []map[string][]OwnedSpace{t.owned.exact, t.owned.wild} {
			for key := range m {
				for _, gs := range t.ghosts(m, key) {
					e := RouteEntry{AddressSpace: gs.Pattern, RG: gs.RG, Up: true, Owner: "record-absent"}
					if gs.Removed {
						e.Owner = "removed"
					}
					out = append(out, e)
				}
			}
		}
	}
	spec := func(p string) int { _, _, s := parsePattern(p); return s }
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	slices.SortFunc(out, func(a, b RouteEntry) int {
		return cmp.Or(
			cmp.Compare(spec(b.AddressSpace), spec(a.AddressSpace)),
			strings.Compare(a.AddressSpace, b.AddressSpace),
			cmp.Compare(b2i(!a.Reachable), b2i(!b.Reachable)),
			cmp.Compare(a.TotalCost, b.TotalCost),
			cmp.Compare(a.AddressSpaceCost, b.AddressSpaceCost),
			strings.Compare(a.RG, b.RG),
			strings.Compare(a.Exit, b.Exit),
		)
	})
	return out
}
