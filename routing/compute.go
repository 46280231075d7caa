package routing

import (
	"fmt"
	"slices"
	"strings"

	"github.com/meshd/meshd/linkstate"
)

// Computer computes tables. Between runs it keeps what does not change
// while records stay the same: the RG name -> int index (so names are
// hashed once, not on every run), each record's connectors resolved to
// RG indices (records are immutable, so a record seen before is not read
// again), the address-space index when no address space changed, and
// scratch buffers. Tables never share anything mutable with it.
//
// A Computer is not safe for concurrent use; a Router owns one.
type Computer struct {
	scratch spfScratch

	ids   map[string]int32 // stable RG indices
	names []string         // index -> name; only ever appended to, so tables may share it
	cache map[*linkstate.Record]*recInfo
	run   uint64 // computations done, marks live cache entries

	prevInput []*linkstate.Record // the previous run's input, by position
	prevPos   []*recInfo          // cache entries of prevInput, by position
	posBuf    []*recInfo          // spare buffer for the next prevPos

	prevRecs []*linkstate.Record // by index, from the previous run
	prevN    int                 // RGs present in the previous run
	index    *asIndex            // address-space index of the previous run

	compactions, indexReuses int // for tests
}

// recInfo is what a Computer remembers of one record.
type recInfo struct {
	id       int32
	resolved bool         // edges are set (done once every RG has an index)
	edges    []cachedEdge // usable inter-RG connectors, sorted by connector ID
	seen     uint64       // last run that used the record
}

type cachedEdge struct {
	to   int32
	cost uint32
	conn *linkstate.Connector
}

// Compute builds the table for self from a set of link-state records (an
// LSDB snapshot). Records that are nil, tombstones or unnamed are skipped;
// of two records for one RG the newer version wins. The records are read,
// never modified, and must not be modified afterwards: the table (and the
// Computer's cache) keep pointers into them.
func Compute(self Self, records []*linkstate.Record) (*Table, error) {
	var c Computer
	return c.Compute(self, records)
}

// Compute is the package-level Compute, reusing what it can from the
// previous run.
func (cp *Computer) Compute(self Self, records []*linkstate.Record) (*Table, error) {
	return cp.ComputeDraining(self, records, nil)
}

// ComputeDraining is Compute for a routing group some of whose members
// drain (draining: their node names, this node's own included when it
// drains; see drain.go).
func (cp *Computer) ComputeDraining(self Self, records []*linkstate.Record, draining []string) (*Table, error) {
	if self.RG == "" || self.Node == "" {
		return nil, fmt.Errorf("routing: compute table: node %q in RG %q: node and RG must be set", self.Node, self.RG)
	}
	g, indexValid := cp.buildGraph(self.RG, records)
	g.run(&cp.scratch)
	t := &Table{self: self, g: g, draining: drainSet(draining)}
	if !indexValid || cp.index == nil {
		cp.index = buildIndex(g)
	} else {
		cp.indexReuses++
	}
	t.idx = cp.index
	t.buildLocalConns()
	return t, nil
}

// id returns the stable index of an RG name, assigning one if needed.
func (cp *Computer) id(name string) int32 {
	if i, ok := cp.ids[name]; ok {
		return i
	}
	i := int32(len(cp.names))
	cp.ids[name] = i
	cp.names = append(cp.names, name)
	return i
}

// maybeCompact drops the stable index when most of it is holes, so that
// RG churn cannot grow it without bound; the next run starts cold.
func (cp *Computer) maybeCompact(records int) {
	if cp.ids != nil && len(cp.names) <= 2*records+64 {
		return
	}
	if cp.ids != nil {
		cp.compactions++
	}
	cp.ids = make(map[string]int32, records+1)
	cp.names = nil // tables keep the old array
	cp.cache = make(map[*linkstate.Record]*recInfo, records)
	cp.prevRecs = nil
	cp.prevN = 0
	cp.prevInput, cp.prevPos, cp.posBuf = nil, nil, nil
	cp.index = nil
}

// buildGraph indexes the live records and their usable connectors. The
// local RG is always a vertex, even before its own record exists. It also
// reports whether the previous address-space index still describes these
// records.
func (cp *Computer) buildGraph(local string, records []*linkstate.Record) (*graph, bool) {
	cp.maybeCompact(len(records))
	cp.run++
	indexValid := cp.index != nil

	// Find each record's cache entry: by position first (an LSDB snapshot
	// lists its records in a stable order), then by pointer.
	pos := cp.posBuf[:0]
	var missing []int
	var newNames []string
	for k, r := range records {
		if r == nil || r.Tombstone || r.RG == "" {
			pos = append(pos, nil)
			continue
		}
		var info *recInfo
		if k < len(cp.prevInput) && cp.prevInput[k] == r {
			info = cp.prevPos[k]
		} else {
			info = cp.cache[r]
		}
		if info == nil {
			missing = append(missing, k)
			if _, ok := cp.ids[r.RG]; !ok {
				newNames = append(newNames, r.RG)
			}
		}
		pos = append(pos, info)
	}
	cp.intern(newNames)
	if len(missing) > 0 {
		slab := make([]recInfo, len(missing))
		for j, k := range missing {
			r := records[k]
			slab[j] = recInfo{id: cp.ids[r.RG]}
			cp.cache[r] = &slab[j]
			pos[k] = &slab[j]
		}
	}

	// One record per RG: the newest.
	li := cp.id(local)
	recs := make([]*linkstate.Record, len(cp.names))
	infos := make([]*recInfo, len(cp.names))
	nconn := 0
	for k, info := range pos {
		if info == nil {
			continue
		}
		info.seen = cp.run
		r := records[k]
		if cur := recs[info.id]; cur != nil && r.Version.Compare(cur.Version) <= 0 {
			continue
		}
		recs[info.id] = r
		infos[info.id] = info
		if !info.resolved {
			nconn += len(r.Connectors)
		}
	}
	cp.prevInput = append(cp.prevInput[:0], records...)
	cp.posBuf, cp.prevPos = cp.prevPos, pos

	// Resolve the connectors of new records, into one allocation.
	slab := make([]cachedEdge, 0, nconn)
	for i, info := range infos {
		if info != nil && !info.resolved {
			first := len(slab)
			slab = cp.resolve(slab, recs[i])
			info.edges = slab[first:len(slab):len(slab)]
			info.resolved = true
		}
	}

	// Names indexed while resolving are targets without a record: they
	// are not vertices of this graph.
	n := len(recs)
	g := &graph{names: cp.names[:n:n], recs: recs, local: li}
	present := 0
	nedges := 0
	for i := range recs {
		info := infos[i]
		if info == nil {
			continue
		}
		present++
		nedges += len(info.edges)
		// A record not seen last run changes the address-space index unless
		// it only replaces one with the same address spaces.
		if indexValid {
			var prev *linkstate.Record
			if i < len(cp.prevRecs) {
				prev = cp.prevRecs[i]
			}
			if prev != recs[i] && (prev == nil || !sameAddressSpaces(prev, recs[i])) {
				indexValid = false
			}
		}
	}
	if present != cp.prevN {
		indexValid = false // an RG went away
	}
	g.nrgs = present
	if recs[li] == nil {
		g.nrgs++
	}

	// CSR adjacency; edges to RGs absent from this run are dropped.
	g.start = make([]int32, n+1)
	g.edges = make([]edge, 0, nedges)
	g.edgeFrom = make([]int32, 0, nedges)
	g.edgeConn = make([]*linkstate.Connector, 0, nedges)
	for i := range recs {
		g.start[i] = int32(len(g.edges))
		info := infos[i]
		if info == nil {
			continue
		}
		for _, e := range info.edges {
			if int(e.to) >= len(recs) || recs[e.to] == nil {
				continue // target unknown (index assigned after this run's RGs) or absent
			}
			g.edges = append(g.edges, edge{to: e.to, cost: e.cost})
			g.edgeFrom = append(g.edgeFrom, int32(i))
			g.edgeConn = append(g.edgeConn, e.conn)
		}
	}
	g.start[n] = int32(len(g.edges))
	g.nbits = int(g.start[li+1] - g.start[li])
	g.words = max(1, (g.nbits+63)/64)

	cp.sweep(present)
	cp.prevRecs = recs
	cp.prevN = present
	return g, indexValid
}

// resolve appends a record's usable inter-RG connectors, with their
// targets as RG indices, to dst, sorted by connector ID so that first-hop
// order (and every tie-break) does not depend on the order inside the
// record.
func (cp *Computer) resolve(dst []cachedEdge, r *linkstate.Record) []cachedEdge {
	first := len(dst)
	for ci := range r.Connectors {
		c := &r.Connectors[ci]
		if c.To == "" || c.To == r.RG || (c.From != "" && c.From != r.RG) || !c.Up() || !hasLiveSource(c, r) {
			continue
		}
		dst = append(dst, cachedEdge{to: cp.id(c.To), cost: edgeCost(c), conn: c})
	}
	added := dst[first:]
	slices.SortFunc(added, func(a, b cachedEdge) int { return strings.Compare(a.conn.ID, b.conn.ID) })
	return dst
}

// hasLiveSource reports whether a connector can be used at all: it lists
// no source bridgeheads (any member sends), or one of them is a live
// member of its routing group. A connector whose only source bridgeheads
// are gone is no edge of the graph, so routes go around it.
func hasLiveSource(c *linkstate.Connector, r *linkstate.Record) bool {
	if len(c.SourceBridgeheads) == 0 {
		return true
	}
	for _, s := range c.SourceBridgeheads {
		for _, m := range r.Members {
			if m.Name == s {
				return true
			}
		}
	}
	return false
}

// intern gives new RG names indices. The names are copied into one
// string so that the index map's keys sit together in memory: resolving
// connector targets compares against them 50,000 times on a cold run.
func (cp *Computer) intern(names []string) {
	if len(names) == 0 {
		return
	}
	arena := strings.Join(names, "")
	off := 0
	for _, nm := range names {
		s := arena[off : off+len(nm)]
		off += len(nm)
		if _, ok := cp.ids[s]; !ok {
			cp.ids[s] = int32(len(cp.names))
			cp.names = append(cp.names, s)
		}
	}
}

// sweep forgets records that were not part of this run.
func (cp *Computer) sweep(present int) {
	if len(cp.cache) <= present+present/4+16 {
		return
	}
	for r, info := range cp.cache {
		if info.seen != cp.run {
			delete(cp.cache, r)
		}
	}
}

// sameAddressSpaces reports whether two records of one RG yield the same
// address-space candidates: the RG's own and those of its external
// connectors, at the same connector positions.
func sameAddressSpaces(a, b *linkstate.Record) bool {
	if !slices.Equal(a.AddressSpaces, b.AddressSpaces) {
		return false
	}
	ea, eb := externalConnectors(a), externalConnectors(b)
	if len(ea) != len(eb) {
		return false
	}
	for k := range ea {
		ca, cb := &a.Connectors[ea[k]], &b.Connectors[eb[k]]
		if ea[k] != eb[k] || ca.ID != cb.ID || !slices.Equal(ca.AddressSpaces, cb.AddressSpaces) {
			return false
		}
	}
	return true
}

// externalConnectors returns the positions of r's external connectors.
func externalConnectors(r *linkstate.Record) []int {
	var out []int
	for k := range r.Connectors {
		if isExternal(r, &r.Connectors[k]) {
			out = append(out, k)
		}
	}
	return out
}

func isExternal(r *linkstate.Record, c *linkstate.Connector) bool {
	return c.To == "" && (c.From == "" || c.From == r.RG)
}
