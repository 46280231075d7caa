package routing

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/linkstate"
)

// withOwned computes a table from tp and gives it an owned set, as the
// Router does.
func withOwned(t *testing.T, tp *topo, owned ...OwnedSpace) *Table {
	t.Helper()
	tb, err := Compute(Self{Node: "a1", RG: "a"}, tp.records())
	if err != nil {
		t.Fatal(err)
	}
	tb.owned = NewOwned(owned)
	return tb
}

// TestOwnedOutlivesRecord: an organisation domain whose owner has no
// record (aged out) never leaves through an external connector, whatever
// it matches; a removed owner's mail is refused permanently.
func TestOwnedOutlivesRecord(t *testing.T) {
	inet := func() *topo { return newTopo().rg("a", "a1").ext("inet", "a", "smart:25", "*", 1) }
	tests := []struct {
		name    string
		tb      func(t *testing.T) *Table
		domain  string
		err     error
		notErr  error
		refused Reason
		kind    Kind
	}{
		{"aged-out owner: waits, not the smarthost", func(t *testing.T) *Table {
			return withOwned(t, inet(), OwnedSpace{RG: "b", Pattern: "b.test"})
		}, "b.test", ErrNoRoute, ErrRemoved, ReasonOwnerUnreachable, NoRoute},
		{"aged-out owner of a wildcard: waits", func(t *testing.T) *Table {
			return withOwned(t, inet(), OwnedSpace{RG: "b", Pattern: "*.b.test"})
		}, "x.y.b.test", ErrNoRoute, ErrRemoved, ReasonOwnerUnreachable, NoRoute},
		{"removed owner: permanent", func(t *testing.T) *Table {
			return withOwned(t, inet(), OwnedSpace{RG: "b", Pattern: "b.test", Removed: true})
		}, "b.test", ErrRemoved, nil, ReasonRemoved, NoRoute},
		{"external connector of the same pattern may not take it either", func(t *testing.T) *Table {
			return withOwned(t, newTopo().rg("a", "a1").ext("leak", "a", "smart:25", "b.test", 1), OwnedSpace{RG: "b", Pattern: "b.test"})
		}, "b.test", ErrNoRoute, ErrRemoved, ReasonOwnerUnreachable, NoRoute},
		{"owner with a record: routes by the record", func(t *testing.T) *Table {
			return withOwned(t, inet().rg("b", "b1").as("b", "b.test", 1).link("ab", "a", "b", 10), OwnedSpace{RG: "b", Pattern: "b.test", Removed: true})
		}, "b.test", nil, nil, 0, Remote},
		{"other domains still leave", func(t *testing.T) *Table {
			return withOwned(t, inet(), OwnedSpace{RG: "b", Pattern: "b.test"})
		}, "elsewhere.example", nil, nil, 0, External},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := tc.tb(t).Route("m1.test", tc.domain)
			if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v\n%s", err, tc.err, d.String())
			}
			if tc.notErr != nil && errors.Is(err, tc.notErr) {
				t.Fatalf("err = %v, must not be %v", err, tc.notErr)
			}
			if errors.Is(err, ErrRemoved) && !errors.Is(err, ErrNoRoute) {
				t.Fatalf("ErrRemoved must also be ErrNoRoute: %v", err)
			}
			if d.Kind != tc.kind || d.Refused != tc.refused {
				t.Fatalf("kind %v refused %v, want %v %v\n%s", d.Kind, d.Refused, tc.kind, tc.refused, d.String())
			}
			if d.Kind == NoRoute && d.Why == "" {
				t.Fatalf("a refusal without a reason:\n%s", d.String())
			}
		})
	}
}

// TestTraceGolden: trace output (table and JSON) for competing paths and
// for every reason a route is refused.
func TestTraceGolden(t *testing.T) {
	triangle := func() *topo {
		return newTopo().rg("a", "a1").rg("b", "b1").rg("c", "c1").as("a", "a.test", 1).as("b", "b.test", 1).as("c", "c.test", 1).
			link("ab", "a", "b", 10, targets("b1:25")).link("bc", "b", "c", 10, targets("c1:25")).link("ac", "a", "c", 50, targets("c1:25")).
			link("ba", "b", "a", 10).link("cb", "c", "b", 10).link("ca", "c", "a", 50)
	}
	cases := []struct {
		name   string
		tb     func(t *testing.T) *Table
		domain string
	}{
		{"competing-paths", func(t *testing.T) *Table { return withOwned(t, triangle()) }, "c.test"},
		{"competing-paths-ab-down", func(t *testing.T) *Table {
			tp := triangle()
			down(connOf(tp, "a", "ab"))
			return withOwned(t, tp)
		}, "c.test"},
		{"tie-break", func(t *testing.T) *Table {
			tp := newTopo().rg("a", "a1").rg("b", "b1").rg("c", "c1").rg("d", "d1").as("d", "d.test", 1).
				link("ab", "a", "b", 5).link("ac", "a", "c", 5).link("bd", "b", "d", 5).link("cd", "c", "d", 5)
			return withOwned(t, tp)
		}, "d.test"},
		{"noroute-connectors-down", func(t *testing.T) *Table {
			tp := triangle()
			down(connOf(tp, "a", "ab"))
			down(connOf(tp, "a", "ac"))
			return withOwned(t, tp)
		}, "c.test"},
		{"noroute-suppressed-exit", func(t *testing.T) *Table {
			tp := newTopo().rg("a", "a1").ext("inet", "a", "smart:25", "*", 1, pair("a1", "smart:25", true), down)
			return withOwned(t, tp)
		}, "elsewhere.example"},
		{"noroute-owner-unreachable", func(t *testing.T) *Table {
			return withOwned(t, newTopo().rg("a", "a1").ext("inet", "a", "smart:25", "*", 1), OwnedSpace{RG: "b", Pattern: "b.test"})
		}, "b.test"},
		{"noroute-removed", func(t *testing.T) *Table {
			return withOwned(t, newTopo().rg("a", "a1").ext("inet", "a", "smart:25", "*", 1), OwnedSpace{RG: "b", Pattern: "b.test", Removed: true})
		}, "b.test"},
		{"noroute-unreachable", func(t *testing.T) *Table {
			tp := newTopo().rg("a", "a1").rg("b", "b1").as("b", "b.test", 1).link("ab", "a", "b", 1, pair("a1", "b1:25", false)).
				ext("inet", "a", "smart:25", "*", 1)
			return withOwned(t, tp)
		}, "b.test"},
		{"noroute-no-bridgehead", func(t *testing.T) *Table {
			tp := newTopo().rg("a", "a1", "a2").ext("out", "a", "smart:25", "partner.test", 1, sources("a9"))
			return withOwned(t, tp)
		}, "partner.test"},
		{"noroute-no-address-space", func(t *testing.T) *Table { return withOwned(t, triangle()) }, "elsewhere.example"},
		{"noroute-invalid-domain", func(t *testing.T) *Table { return withOwned(t, triangle()) }, "bad domain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := tc.tb(t).Trace("m1.test", tc.domain)
			if strings.HasPrefix(tc.name, "noroute") {
				if err == nil || d.Kind != NoRoute || d.Refused == 0 || d.Why == "" {
					t.Fatalf("want a refusal with a reason, got err %v:\n%s", err, d.String())
				}
			} else if err != nil {
				t.Fatal(err)
			}
			js, _ := json.MarshalIndent(d, "", "  ")
			golden(t, tc.name+".txt", []byte(d.String()+"\n"))
			golden(t, tc.name+".json", append(js, '\n'))
		})
	}
}

func connOf(tp *topo, rg, id string) *linkstate.Connector {
	r := tp.get(rg)
	for i := range r.Connectors {
		if r.Connectors[i].ID == id {
			return &r.Connectors[i]
		}
	}
	panic("no connector " + id)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", "trace", name), got)
}

// TestRoutesListOwnedWithoutRecord: `meshctl routes` shows the
// organisation domains whose group has no record, and whether they wait
// or are removed.
func TestRoutesListOwnedWithoutRecord(t *testing.T) {
	tb := withOwned(t, newTopo().rg("a", "a1").as("a", "a.test", 1).ext("inet", "a", "smart:25", "*", 1),
		OwnedSpace{RG: "a", Pattern: "a.test"}, OwnedSpace{RG: "b", Pattern: "b.test"}, OwnedSpace{RG: "c", Pattern: "*.c.test", Removed: true})
	got := map[string]string{}
	for _, e := range tb.Routes() {
		got[e.AddressSpace+"@"+e.RG] = e.Owner
	}
	want := map[string]string{"a.test@a": "", "b.test@b": "record-absent", "*.c.test@c": "removed", "*@a": ""}
	if len(got) != len(want) {
		t.Fatalf("routes %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: owner %q (listed %v), want %q", k, g, ok, v)
		}
	}
}
