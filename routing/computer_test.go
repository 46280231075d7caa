package routing

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/meshd/meshd/linkstate"
)

// TestComputerReuseMatchesFresh drives one Computer through a long series
// of LSDB changes (connector flaps, cost and address-space changes, RGs
// added, removed and tombstoned, duplicates) and checks every table
// against one computed from scratch.
func TestComputerReuseMatchesFresh(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var comp Computer
	recs := randomRecords(rng)
	for _, r := range recs {
		r.AddressSpaces = []linkstate.AddressSpace{{Pattern: r.RG + ".test", Cost: 1}}
	}
	self := Self{Node: "n0", RG: "rg0"}
	domains := []string{"x.test", "any.example"}
	for i := 0; i < 10; i++ {
		domains = append(domains, fmt.Sprintf("rg%d.test", i))
	}
	for step := 0; step < 2000; step++ {
		recs = mutate(rng, recs)
		got, err := comp.Compute(self, recs)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Compute(self, recs)
		if !reflect.DeepEqual(got.RGs(), want.RGs()) {
			t.Fatalf("step %d: RGs differ\n got %+v\nwant %+v%s", step, got.RGs(), want.RGs(), dumpRecords(recs))
		}
		if !reflect.DeepEqual(got.Routes(), want.Routes()) {
			t.Fatalf("step %d: Routes differ\n got %+v\nwant %+v", step, got.Routes(), want.Routes())
		}
		for _, dom := range domains {
			dg, eg := got.Route("m", dom)
			dw, ew := want.Route("m", dom)
			if fmt.Sprint(eg) != fmt.Sprint(ew) || !reflect.DeepEqual(dg, dw) {
				t.Fatalf("step %d %s:\n%s\n--- fresh:\n%s", step, dom, dg.String(), dw.String())
			}
		}
	}
	if len(comp.names) > 64+2*len(recs)+16 {
		t.Errorf("stable index grew to %d names", len(comp.names))
	}
	if comp.compactions == 0 || comp.indexReuses == 0 {
		t.Errorf("paths not exercised: %d compactions, %d index reuses", comp.compactions, comp.indexReuses)
	}
	t.Logf("%d compactions, %d index reuses", comp.compactions, comp.indexReuses)
}

// mutate returns a new record set with one change; records themselves are
// never modified (copy on write, as the LSDB does).
func mutate(rng *rand.Rand, recs []*linkstate.Record) []*linkstate.Record {
	out := slices.Clone(recs)
	if len(out) > 24 { // keep the LSDB small: drop one
		i := rng.IntN(len(out))
		return slices.Delete(out, i, i+1)
	}
	if len(out) == 0 || rng.IntN(5) == 0 {
		name := fmt.Sprintf("rg%d", rng.IntN(10))
		if rng.IntN(5) != 0 {
			name = fmt.Sprintf("new%d", rng.IntN(1_000_000)) // churn of names: exercises compaction
		}
		r := &linkstate.Record{RG: name, Members: []linkstate.Member{{Name: "m" + name, SMTP: "m" + name + ":25"}},
			AddressSpaces: []linkstate.AddressSpace{{Pattern: name + ".test", Cost: 2}}}
		return append(out, r)
	}
	i := rng.IntN(len(out))
	cp := *out[i]
	cp.Connectors = slices.Clone(cp.Connectors)
	cp.AddressSpaces = slices.Clone(cp.AddressSpaces)
	cp.Version.Minor++
	switch rng.IntN(9) {
	case 0:
		return slices.Delete(out, i, i+1)
	case 1:
		cp.Tombstone = !cp.Tombstone
	case 2:
		cp.AddressSpaces = append(cp.AddressSpaces, linkstate.AddressSpace{Pattern: "*.test", Cost: uint32(rng.IntN(5))})
	case 3:
		cp.Connectors = append(cp.Connectors, linkstate.Connector{ID: fmt.Sprintf("x%d", rng.IntN(1000)), From: cp.RG,
			AddressSpaces: []linkstate.AddressSpace{{Pattern: "*", Cost: uint32(rng.IntN(5))}}, Suppressed: rng.IntN(3) == 0})
	case 4:
		cp.Connectors = append(cp.Connectors, linkstate.Connector{ID: fmt.Sprintf("y%d", rng.IntN(1000)), From: cp.RG,
			To: fmt.Sprintf("rg%d", rng.IntN(12)), Cost: 1 + uint32(rng.IntN(4))})
	case 5:
		cp.Version.Minor -= 2 // an older duplicate: must lose
		return append(out, &cp)
	default:
		if len(cp.Connectors) > 0 {
			k := rng.IntN(len(cp.Connectors))
			cp.Connectors[k].Suppressed = !cp.Connectors[k].Suppressed
			cp.Connectors[k].Cost = 1 + uint32(rng.IntN(4))
		}
	}
	out[i] = &cp
	return out
}
