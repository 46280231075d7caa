package routing

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/meshd/meshd/linkstate"
)

// randomRecords builds a small random RG graph: random costs (from a narrow
// range so ties are common), parallel connectors, self-loops, down and
// suppressed connectors, connectors to unknown RGs, tombstones, and RGs
// that nothing reaches.
func randomRecords(rng *rand.Rand) []*linkstate.Record {
	n := 2 + rng.IntN(6)
	maxCost := []uint32{1, 2, 3, 10, 100}[rng.IntN(5)]
	recs := make([]*linkstate.Record, n)
	for i := range recs {
		recs[i] = &linkstate.Record{
			RG:      fmt.Sprintf("rg%d", i),
			Members: []linkstate.Member{{Name: fmt.Sprintf("n%d", i), SMTP: fmt.Sprintf("n%d:25", i)}},
		}
		if i > 0 && rng.IntN(12) == 0 {
			recs[i].Tombstone = true
		}
	}
	m := rng.IntN(n * 3)
	for k := 0; k < m; k++ {
		from := recs[rng.IntN(n)]
		to := fmt.Sprintf("rg%d", rng.IntN(n))
		if rng.IntN(20) == 0 {
			to = "unknown"
		}
		c := linkstate.Connector{ID: fmt.Sprintf("c%d", k), From: from.RG, To: to, Cost: 1 + uint32(rng.IntN(int(maxCost)))}
		switch rng.IntN(8) {
		case 0:
			c.Suppressed = true
		case 1:
			c.Pairs = []linkstate.PairState{{Source: "x", Target: "y", Up: false}}
		case 2:
			c.Pairs = []linkstate.PairState{{Source: "x", Target: "y", Up: false}, {Source: "x", Target: "z", Up: true}}
		}
		from.Connectors = append(from.Connectors, c)
	}
	rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	return recs
}

type bfEdge struct {
	to   string
	cost uint64
	id   string
}

// bruteForce enumerates every simple path from src and returns, per
// reachable RG, the least cost and the set of first-hop connector IDs of
// the least-cost paths.
func bruteForce(src string, recs []*linkstate.Record) (map[string]uint64, map[string][]string) {
	live := map[string]bool{}
	for _, r := range recs {
		if !r.Tombstone {
			live[r.RG] = true
		}
	}
	live[src] = true
	adj := map[string][]bfEdge{}
	for _, r := range recs {
		if r.Tombstone {
			continue
		}
		for i := range r.Connectors {
			c := &r.Connectors[i]
			if c.To == "" || c.To == r.RG || !live[c.To] || !c.Up() {
				continue
			}
			adj[r.RG] = append(adj[r.RG], bfEdge{to: c.To, cost: uint64(c.Cost), id: c.ID})
		}
	}
	cost := map[string]uint64{src: 0}
	first := map[string][]string{}
	onPath := map[string]bool{src: true}
	var walk func(u string, d uint64, fh string)
	walk = func(u string, d uint64, fh string) {
		for _, e := range adj[u] {
			if onPath[e.to] {
				continue
			}
			f := fh
			if u == src {
				f = e.id
			}
			nd := d + e.cost
			old, seen := cost[e.to]
			switch {
			case !seen || nd < old:
				cost[e.to] = nd
				first[e.to] = []string{f}
			case nd == old && !slices.Contains(first[e.to], f):
				first[e.to] = append(first[e.to], f)
			}
			onPath[e.to] = true
			walk(e.to, nd, f)
			onPath[e.to] = false
		}
	}
	walk(src, 0, "")
	for k := range first {
		slices.Sort(first[k])
	}
	return cost, first
}

func TestSPFMatchesBruteForce(t *testing.T) {
	const graphs = 5000
	rng := rand.New(rand.NewPCG(1, 2))
	var comp Computer // reused buffers must not leak state between runs
	for gi := 0; gi < graphs; gi++ {
		recs := randomRecords(rng)
		src := "rg0"
		tb, err := comp.Compute(Self{Node: "n0", RG: src}, recs)
		if err != nil {
			t.Fatal(err)
		}
		cost, first := bruteForce(src, recs)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("graph %d: %s\nrecords: %s", gi, fmt.Sprintf(format, args...), dumpRecords(recs))
		}
		for _, r := range tb.RGs() {
			c, ok := cost[r.RG]
			if ok != r.Reachable {
				fail("%s reachable = %v, brute force %v", r.RG, r.Reachable, ok)
			}
			if !ok {
				continue
			}
			if r.Cost != c {
				fail("%s cost = %d, brute force %d", r.RG, r.Cost, c)
			}
			var fh []string
			for _, h := range r.FirstHops {
				fh = append(fh, h.Connector)
			}
			if !slices.Equal(fh, first[r.RG]) {
				fail("%s first hops = %v, brute force %v", r.RG, fh, first[r.RG])
			}
			checkPath(t, gi, recs, r)
		}
		for rg := range cost {
			if _, ok := tb.RG(rg); !ok {
				fail("brute force reaches %s, table does not know it", rg)
			}
		}
	}
}

// checkPath verifies that the reported path uses up connectors, starts
// with the first of the first hops and costs what the table says.
func checkPath(t *testing.T, gi int, recs []*linkstate.Record, r RGRoute) {
	t.Helper()
	if len(r.FirstHops) == 0 {
		if len(r.Path) != 1 || r.Cost != 0 {
			t.Fatalf("graph %d: %s: no first hops but path %v cost %d", gi, r.RG, r.Path, r.Cost)
		}
		return
	}
	byRG := map[string]*linkstate.Record{}
	for _, rec := range recs {
		byRG[rec.RG] = rec
	}
	var sum uint64
	for i := 0; i+1 < len(r.Path); i++ {
		best := uint64(0)
		for _, c := range byRG[r.Path[i]].Connectors {
			if c.To != r.Path[i+1] || !c.Up() {
				continue
			}
			if i == 0 && c.ID != r.FirstHops[0].Connector {
				continue
			}
			if best == 0 || uint64(c.Cost) < best {
				best = uint64(c.Cost)
			}
		}
		if best == 0 {
			t.Fatalf("graph %d: %s: path %v has no up connector %s->%s", gi, r.RG, r.Path, r.Path[i], r.Path[i+1])
		}
		sum += best
	}
	if sum != r.Cost || r.Path[len(r.Path)-1] != r.RG {
		t.Fatalf("graph %d: %s: path %v costs %d, table says %d", gi, r.RG, r.Path, sum, r.Cost)
	}
}

func dumpRecords(recs []*linkstate.Record) string {
	s := ""
	for _, r := range recs {
		s += fmt.Sprintf("\n  %s tomb=%v:", r.RG, r.Tombstone)
		for _, c := range r.Connectors {
			s += fmt.Sprintf(" %s->%s(%d,up=%v)", c.ID, c.To, c.Cost, c.Up())
		}
	}
	return s
}

// TestSPFDeterministicAcrossOrder: the same records in any order give the
// same table answers, including the chosen path and next hop.
func TestSPFDeterministicAcrossOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for gi := 0; gi < 300; gi++ {
		recs := randomRecords(rng)
		for _, r := range recs {
			if !r.Tombstone {
				r.AddressSpaces = []linkstate.AddressSpace{{Pattern: r.RG + ".test", Cost: uint32(rng.IntN(3))}, {Pattern: "*.test", Cost: 5}}
			}
		}
		a, _ := Compute(Self{Node: "n0", RG: "rg0"}, recs)
		// Tables keep pointers into the records: shuffle copies.
		shuffled := make([]*linkstate.Record, len(recs))
		for i, r := range recs {
			cp := *r
			cp.Connectors = slices.Clone(r.Connectors)
			shuffled[i] = &cp
		}
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for _, r := range shuffled {
			rng.Shuffle(len(r.Connectors), func(i, j int) { r.Connectors[i], r.Connectors[j] = r.Connectors[j], r.Connectors[i] })
		}
		b, _ := Compute(Self{Node: "n0", RG: "rg0"}, shuffled)
		for i := 0; i < 8; i++ {
			for _, dom := range []string{fmt.Sprintf("rg%d.test", i), "x.test"} {
				for m := 0; m < 2; m++ {
					da, ea := a.Route(msgID(m), dom)
					db, eb := b.Route(msgID(m), dom)
					if fmt.Sprint(ea) != fmt.Sprint(eb) || da.String() != db.String() {
						t.Fatalf("graph %d %s: order changed the decision:\n%s\n---\n%s", gi, dom, da.String(), db.String())
					}
				}
			}
		}
	}
}

// TestRouteMatchesBruteForce checks whole decisions on random graphs with
// random address spaces against an oracle that applies the rules
// directly: most specific level with a usable candidate (stopping at a
// level that holds an RG's own address space), then least total cost,
// with the chosen first hop among the brute-force least-cost first hops.
func TestRouteMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	patterns := []string{"x.test", "*.test", "*"}
	kinds := map[Kind]int{}
	defer func() { t.Logf("decisions by kind: %v", kinds) }()
	for gi := 0; gi < 3000; gi++ {
		recs := randomRecords(rng)
		for _, r := range recs {
			if rng.IntN(2) == 0 {
				r.AddressSpaces = append(r.AddressSpaces, linkstate.AddressSpace{Pattern: patterns[rng.IntN(3)], Cost: uint32(rng.IntN(4))})
			}
			if rng.IntN(3) == 0 {
				r.Connectors = append(r.Connectors, linkstate.Connector{ID: "ext", From: r.RG, Smarthost: "sh:25",
					AddressSpaces: []linkstate.AddressSpace{{Pattern: patterns[rng.IntN(3)], Cost: uint32(rng.IntN(4))}},
					Suppressed:    rng.IntN(4) == 0})
			}
		}
		tb, err := Compute(Self{Node: "n0", RG: "rg0"}, recs)
		if err != nil {
			t.Fatal(err)
		}
		cost, first := bruteForce("rg0", recs)
		d, err := tb.Route(msgID(gi), "x.test")
		kinds[d.Kind]++

		// Oracle.
		type cand struct {
			rg    string
			ext   bool
			total uint64
		}
		wantTotal, wantAS, found := uint64(0), "", false
		for _, pat := range patterns {
			var usable []cand
			owned := false
			for _, r := range recs {
				if r.Tombstone {
					continue
				}
				for _, as := range r.AddressSpaces {
					if as.Pattern == pat {
						owned = true
						if c, ok := cost[r.RG]; ok {
							usable = append(usable, cand{r.RG, false, c + uint64(as.Cost)})
						}
					}
				}
				for _, c := range r.Connectors {
					if c.To == "" && c.Up() && c.AddressSpaces[0].Pattern == pat {
						if pc, ok := cost[r.RG]; ok {
							usable = append(usable, cand{r.RG, true, pc + uint64(c.AddressSpaces[0].Cost)})
						}
					}
				}
			}
			if len(usable) > 0 {
				found, wantAS = true, pat
				wantTotal = usable[0].total
				for _, c := range usable {
					wantTotal = min(wantTotal, c.total)
				}
				break
			}
			if owned {
				break
			}
		}
		fail := func(msg string) {
			t.Fatalf("graph %d: %s\n%s%s", gi, msg, d.String(), dumpRecords(recs))
		}
		if !found {
			if !errors.Is(err, ErrNoRoute) {
				fail("oracle: no route")
			}
			continue
		}
		if err != nil || d.AddressSpace != wantAS || d.TotalCost != wantTotal {
			fail(fmt.Sprintf("oracle: %s total %d", wantAS, wantTotal))
		}
		if d.Kind == Remote && !slices.Contains(first[d.DestRG], d.Connector.ID) {
			fail(fmt.Sprintf("first hop not among least-cost first hops %v", first[d.DestRG]))
		}
		if (d.Kind == Local || d.Kind == External) && d.DestRG != "rg0" {
			fail("local decision for a remote RG")
		}
	}
}
