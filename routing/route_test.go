package routing

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/meshd/meshd/linkstate"
)

// want describes the expected decision; empty fields are not checked.
type want struct {
	err      error
	kind     Kind
	as       string   // matched address space
	dest     string   // DestRG
	conn     string   // Connector.ID
	exit     string   // Exit.ID
	hop      string   // NextHops[0].Addr
	hops     []string // all NextHops addrs, in order
	path     string   // "a>b>c"
	total    int64    // 0: not checked
	mx       bool
	reasons  []Reason // each must appear among the alternatives
	altCount int      // 0: not checked
	noAlts   bool
}

func TestRouteRules(t *testing.T) {
	self := Self{Node: "a1", RG: "a"}
	tests := []struct {
		name   string
		topo   *topo
		self   *Self
		domain string
		msg    string
		want   want
	}{
		{
			name:   "local domain is delivered locally",
			topo:   newTopo().rg("a", "a1").as("a", "example.com", 1),
			domain: "example.com",
			want:   want{kind: Local, as: "example.com", dest: "a", path: "a", total: 1, noAlts: true},
		},
		{
			name:   "domain is normalised (case, trailing dot)",
			topo:   newTopo().rg("a", "a1").as("a", "Example.COM.", 1),
			domain: "EXAMPLE.com.",
			want:   want{kind: Local, as: "example.com", total: 1},
		},
		{
			name: "remote RG reached over its connector's target bridgehead",
			topo: newTopo().rg("a", "a1").rg("b", "b1").as("b", "b.test", 2).
				link("ab", "a", "b", 10, targets("b1:25")),
			domain: "b.test",
			want:   want{kind: Remote, as: "b.test", dest: "b", conn: "ab", hop: "b1:25", path: "a>b", total: 12},
		},
		{
			name: "exact beats wildcard even when dearer",
			topo: newTopo().rg("a", "a1").rg("b", "b1").rg("c", "c1").
				as("b", "x.example.com", 50).as("c", "*.example.com", 1).
				link("ab", "a", "b", 10).link("ac", "a", "c", 1),
			domain: "x.example.com",
			want:   want{kind: Remote, dest: "b", as: "x.example.com", conn: "ab", total: 60, reasons: []Reason{ReasonLessSpecific}},
		},
		{
			name: "longer wildcard beats shorter",
			topo: newTopo().rg("a", "a1").rg("b", "b1").rg("c", "c1").
				as("b", "*.sub.example.com", 50).as("c", "*.example.com", 1).
				link("ab", "a", "b", 10).link("ac", "a", "c", 1),
			domain: "x.sub.example.com",
			want:   want{kind: Remote, dest: "b", as: "*.sub.example.com", reasons: []Reason{ReasonLessSpecific}},
		},
		{
			name: "wildcard does not match the bare domain",
			topo: newTopo().rg("a", "a1").rg("b", "b1").as("b", "*.example.com", 1).
				link("ab", "a", "b", 1).ext("net", "a", "", "*", 100),
			domain: "example.com",
			want:   want{kind: External, as: "*", conn: "net", mx: true, total: 100},
		},
		{
			name: "star catches everything else through a smarthost",
			topo: newTopo().rg("a", "a1").as("a", "example.com", 1).
				ext("out", "a", "relay.isp:587", "*", 5),
			domain: "elsewhere.org",
			want:   want{kind: External, as: "*", conn: "out", exit: "out", hops: []string{"relay.isp:587"}, path: "a", total: 5},
		},
		{
			name: "least total cost: path plus address-space cost",
			topo: newTopo().rg("a", "a1").rg("b", "b1").rg("c", "c1").
				as("b", "shared.test", 1).as("c", "shared.test", 5).
				link("ab", "a", "b", 10).link("ac", "a", "c", 2),
			domain: "shared.test",
			want:   want{kind: Remote, dest: "c", conn: "ac", total: 7, reasons: []Reason{ReasonHigherCost}},
		},
		{
			name: "multi-hop path through a transit RG",
			topo: newTopo().rg("a", "a1").rg("b", "b1").rg("c", "c1").as("c", "c.test", 0).
				link("ab", "a", "b", 3).link("bc", "b", "c", 4).link("ac", "a", "c", 10),
			domain: "c.test",
			want:   want{kind: Remote, dest: "c", conn: "ab", hop: "b1:25", path: "a>b>c", total: 7},
		},
		{
			name: "down connector is avoided",
			topo: newTopo().rg("a", "a1").rg("b", "b1").rg("c", "c1").as("c", "c.test", 0).
				link("ab", "a", "b", 3).link("bc", "b", "c", 4, down).link("ac", "a", "c", 10),
			domain: "c.test",
			want:   want{kind: Remote, conn: "ac", path: "a>c", total: 10},
		},
		{
			name: "connector with all pairs down is avoided",
			topo: newTopo().rg("a", "a1").rg("b", "b1").rg("c", "c1").as("c", "c.test", 0).
				link("ac", "a", "c", 1, pair("a1", "c1:25", false)).
				link("ab", "a", "b", 1).link("bc", "b", "c", 1),
			domain: "c.test",
			want:   want{kind: Remote, conn: "ab", path: "a>b>c", total: 2},
		},
		{
			name: "unreachable owned domain waits: no fall-through to star",
			topo: newTopo().rg("a", "a1").rg("b", "b1").as("b", "b.test", 1).
				link("ab", "a", "b", 1, down).ext("net", "a", "", "*", 1),
			domain: "b.test",
			want:   want{err: ErrNoRoute, kind: NoRoute, reasons: []Reason{ReasonUnreachable, ReasonOwnedDomain}},
		},
		{
			name: "down external connector falls through to a less specific one",
			topo: newTopo().rg("a", "a1").
				ext("partner", "a", "partner.mx:25", "partner.test", 1, down).
				ext("net", "a", "", "*", 50),
			domain: "partner.test",
			want:   want{kind: External, conn: "net", mx: true, reasons: []Reason{ReasonConnectorDown}},
		},
		{
			name:   "nothing matches",
			topo:   newTopo().rg("a", "a1").as("a", "a.test", 1),
			domain: "other.test",
			want:   want{err: ErrNoRoute, kind: NoRoute, noAlts: true},
		},
		{
			name:   "invalid domain",
			topo:   newTopo().rg("a", "a1"),
			domain: "a..b",
			want:   want{err: ErrInvalidDomain, kind: NoRoute},
		},
		{
			name:   "local RG without a record routes nothing",
			topo:   newTopo().rg("b", "b1").as("b", "b.test", 1),
			domain: "b.test",
			want:   want{err: ErrNoRoute, kind: NoRoute, reasons: []Reason{ReasonUnreachable}},
		},
		{
			name: "local delivery wins a cost tie",
			topo: newTopo().rg("a", "a1").rg("b", "b1").as("a", "t.test", 5).as("b", "t.test", 4).
				link("ab", "a", "b", 1),
			domain: "t.test",
			want:   want{kind: Local, dest: "a", total: 5, reasons: []Reason{ReasonLocalPreferred}},
		},
		{
			name: "equal-cost connectors: hash tie-break is reported",
			topo: newTopo().rg("a", "a1").rg("b", "b1").rg("c", "c1").rg("d", "d1").as("d", "d.test", 0).
				link("ab", "a", "b", 1).link("ac", "a", "c", 1).link("bd", "b", "d", 1).link("cd", "c", "d", 1),
			domain: "d.test",
			want:   want{kind: Remote, dest: "d", total: 2, reasons: []Reason{ReasonTieBreak}, altCount: 1},
		},
		{
			name: "not a source bridgehead: hand to one in our RG (Intra)",
			topo: newTopo().rg("a", "a1", "a2").rg("b", "b1").as("b", "b.test", 0).
				link("ab", "a", "b", 1, sources("a2")),
			domain: "b.test",
			want:   want{kind: Intra, conn: "ab", hops: []string{"a2:25"}, path: "a>b", total: 1},
		},
		{
			name: "empty source bridgeheads: any member sends itself",
			topo: newTopo().rg("a", "a1", "a2").rg("b", "b1").as("b", "b.test", 0).
				link("ab", "a", "b", 1),
			domain: "b.test",
			want:   want{kind: Remote, hops: []string{"b1:25"}},
		},
		{
			name: "source bridgehead not a member: the connector is no edge",
			topo: newTopo().rg("a", "a1").rg("b", "b1").as("b", "b.test", 0).
				link("ab", "a", "b", 1, sources("ghost")),
			domain: "b.test",
			want:   want{err: ErrNoRoute, kind: NoRoute, reasons: []Reason{ReasonUnreachable}},
		},
		{
			name: "only source bridgehead gone: route around through c",
			topo: newTopo().rg("a", "a1").rg("b", "b1").rg("c", "c1").as("b", "b.test", 0).
				link("ab", "a", "b", 1, sources("ghost"), targets("b1:25")).
				link("ac", "a", "c", 5, targets("c1:25")).link("cb", "c", "b", 5, targets("b1:25")),
			domain: "b.test",
			want:   want{kind: Remote, hops: []string{"c1:25"}},
		},
		{
			name: "our pairs down, another source's up: Intra to it",
			topo: newTopo().rg("a", "a1", "a2").rg("b", "b1").as("b", "b.test", 0).
				link("ab", "a", "b", 1, sources("a1", "a2"), targets("b1:25"),
					pair("a1", "b1:25", false), pair("a2", "b1:25", true)),
			domain: "b.test",
			want:   want{kind: Intra, hops: []string{"a2:25"}},
		},
		{
			name: "live source bridgeheads first, down ones as fallback",
			topo: newTopo().rg("a", "a1", "a2", "a3").rg("b", "b1").as("b", "b.test", 0).
				link("ab", "a", "b", 1, sources("a3", "a2"), targets("b1:25"),
					pair("a2", "b1:25", false), pair("a3", "b1:25", true)),
			domain: "b.test",
			want:   want{kind: Intra, hops: []string{"a3:25", "a2:25"}},
		},
		{
			name: "down target bridgehead comes last",
			topo: newTopo().rg("a", "a1").rg("b", "b1", "b2").as("b", "b.test", 0).
				link("ab", "a", "b", 1, targets("b1:25", "b2:25"), pair("a1", "b1:25", false), pair("a1", "b2:25", true)),
			domain: "b.test",
			want:   want{kind: Remote, hops: []string{"b2:25", "b1:25"}},
		},
		{
			name: "no target bridgeheads configured: members of the target RG",
			topo: newTopo().rg("a", "a1").rg("b", "b1").as("b", "b.test", 0).
				link("ab", "a", "b", 1),
			domain: "b.test",
			want:   want{kind: Remote, hops: []string{"b1:25"}},
		},
		{
			name: "external connector of another RG: route leads there",
			topo: newTopo().rg("a", "a1").rg("b", "b1").link("ab", "a", "b", 4).
				ext("gw", "b", "smart.b:25", "*", 3),
			domain: "internet.example",
			want:   want{kind: Remote, dest: "b", conn: "ab", exit: "gw", hop: "b1:25", path: "a>b", total: 7},
		},
		{
			name: "local external connector beats a remote one by cost",
			topo: newTopo().rg("a", "a1").rg("b", "b1").link("ab", "a", "b", 1).
				ext("gw", "b", "smart.b:25", "*", 1).ext("mine", "a", "", "*", 10),
			domain: "x.example",
			want:   want{kind: Remote, exit: "gw", total: 2, reasons: []Reason{ReasonHigherCost}},
		},
		{
			name:   "external connector restricted to another member: Intra",
			topo:   newTopo().rg("a", "a1", "a2").ext("out", "a", "smart:25", "*", 1, sources("a2")),
			domain: "x.example",
			want:   want{kind: Intra, conn: "out", exit: "out", hops: []string{"a2:25"}},
		},
		{
			name: "tombstoned RG is not a vertex",
			topo: func() *topo {
				tp := newTopo().rg("a", "a1").rg("b", "b1").as("b", "b.test", 0).link("ab", "a", "b", 1)
				tp.get("b").Tombstone = true
				return tp
			}(),
			domain: "b.test",
			want:   want{err: ErrNoRoute, kind: NoRoute},
		},
		{
			name: "connector to an unknown RG is ignored",
			topo: func() *topo {
				tp := newTopo().rg("a", "a1").rg("b", "b1").as("b", "b.test", 0).link("ab", "a", "b", 5)
				r := tp.get("a")
				r.Connectors = append(r.Connectors, linkstate.Connector{ID: "az", From: "a", To: "zz", Cost: 1})
				return tp
			}(),
			domain: "b.test",
			want:   want{kind: Remote, conn: "ab", total: 5},
		},
		{
			name: "address literal only matches star",
			topo: newTopo().rg("a", "a1").as("a", "example.com", 1).
				ext("out", "a", "relay:25", "*", 5),
			domain: "[192.0.2.1]",
			want:   want{kind: External, as: "*"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := self
			if tc.self != nil {
				s = *tc.self
			}
			tb, err := Compute(s, tc.topo.records())
			if err != nil {
				t.Fatal(err)
			}
			msg := tc.msg
			if msg == "" {
				msg = "m1.test"
			}
			d, err := tb.Route(msg, tc.domain)
			checkDecision(t, d, err, tc.want)
		})
	}
}

func checkDecision(t *testing.T, d Decision, err error, w want) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("decision:\n%s", d.String())
		}
	}()
	if w.err != nil {
		if !errors.Is(err, w.err) {
			t.Fatalf("err = %v, want %v", err, w.err)
		}
	} else if err != nil {
		t.Fatalf("unexpected err %v", err)
	}
	if d.Kind != w.kind {
		t.Errorf("kind = %s, want %s", d.Kind, w.kind)
	}
	check := func(field, got, want string) {
		if want != "" && got != want {
			t.Errorf("%s = %q, want %q", field, got, want)
		}
	}
	check("address space", d.AddressSpace, w.as)
	check("dest", d.DestRG, w.dest)
	if d.Connector != nil {
		check("connector", d.Connector.ID, w.conn)
	} else if w.conn != "" {
		t.Errorf("no connector, want %q", w.conn)
	}
	if d.Exit != nil {
		check("exit", d.Exit.ID, w.exit)
	} else if w.exit != "" {
		t.Errorf("no exit, want %q", w.exit)
	}
	var addrs []string
	for _, h := range d.NextHops {
		addrs = append(addrs, h.Addr)
	}
	if w.hop != "" && (len(addrs) == 0 || addrs[0] != w.hop) {
		t.Errorf("next hops %v, want first %q", addrs, w.hop)
	}
	if w.hops != nil && !slices.Equal(addrs, w.hops) {
		t.Errorf("next hops %v, want %v", addrs, w.hops)
	}
	check("path", strings.Join(d.Path, ">"), w.path)
	if w.total != 0 && d.TotalCost != uint64(w.total) {
		t.Errorf("total = %d, want %d", d.TotalCost, w.total)
	}
	if d.TotalCost != d.PathCost+d.AddressSpaceCost {
		t.Errorf("total %d != path %d + as %d", d.TotalCost, d.PathCost, d.AddressSpaceCost)
	}
	if d.MX != w.mx {
		t.Errorf("mx = %v, want %v", d.MX, w.mx)
	}
	for _, r := range w.reasons {
		if !slices.ContainsFunc(d.Alternatives, func(a Alternative) bool { return a.Reason == r }) {
			t.Errorf("no alternative with reason %s", r)
		}
	}
	if w.noAlts && len(d.Alternatives) != 0 {
		t.Errorf("%d alternatives, want none", len(d.Alternatives))
	}
	if w.altCount != 0 && len(d.Alternatives) != w.altCount {
		t.Errorf("%d alternatives, want %d", len(d.Alternatives), w.altCount)
	}
}

func TestRouteNewerRecordWins(t *testing.T) {
	b1 := []linkstate.Member{{Name: "b1", SMTP: "b1:25"}}
	old := &linkstate.Record{RG: "b", Version: linkstate.Version{Epoch: 1, Major: 1}, Members: b1,
		AddressSpaces: []linkstate.AddressSpace{{Pattern: "old.test"}}}
	cur := &linkstate.Record{RG: "b", Version: linkstate.Version{Epoch: 1, Major: 2}, Members: b1,
		AddressSpaces: []linkstate.AddressSpace{{Pattern: "new.test"}}}
	a := &linkstate.Record{RG: "a", Connectors: []linkstate.Connector{{ID: "ab", From: "a", To: "b", Cost: 1}}}
	for _, order := range [][]*linkstate.Record{{a, old, cur}, {a, cur, old}} {
		tb, err := Compute(Self{Node: "a1", RG: "a"}, order)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tb.Route("m", "new.test"); err != nil {
			t.Errorf("new.test: %v", err)
		}
		if _, err := tb.Route("m", "old.test"); !errors.Is(err, ErrNoRoute) {
			t.Errorf("old.test: err %v, want ErrNoRoute", err)
		}
	}
}

func TestComputeRejectsEmptySelf(t *testing.T) {
	for _, s := range []Self{{}, {Node: "n"}, {RG: "r"}} {
		if _, err := Compute(s, nil); err == nil {
			t.Errorf("Compute(%+v) succeeded", s)
		}
	}
}

func TestDecisionJSONAndLines(t *testing.T) {
	tb, err := Compute(Self{Node: "a1", RG: "a"}, newTopo().rg("a", "a1").rg("b", "b1").rg("c", "c1").
		as("c", "c.test", 2).as("b", "*.test", 1).
		link("ab", "a", "b", 1).link("bc", "b", "c", 1).ext("net", "a", "", "*", 9).records())
	if err != nil {
		t.Fatal(err)
	}
	d, err := tb.Route("m1.test", "c.test")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"kind":"remote"`, `"path":["a","b","c"]`, `"reason":"less-specific"`, `"total_cost":4`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("JSON lacks %s: %s", s, b)
		}
	}
	var back Decision
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Kind != Remote || len(back.Alternatives) != len(d.Alternatives) || back.Alternatives[0].Reason != d.Alternatives[0].Reason {
		t.Errorf("round trip: %+v", back)
	}
	text := d.String()
	for _, s := range []string{"route c.test", "path: a -> b -> c (path cost 2 + address space cost 2 = 4)",
		"connector: ab (a -> b, cost 1)", "next hop (chosen): b1 b1:25", "*.test at b", "less-specific"} {
		if !strings.Contains(text, s) {
			t.Errorf("text lacks %q:\n%s", s, text)
		}
	}
}

func TestRoutesAndRGs(t *testing.T) {
	tb, err := Compute(Self{Node: "a1", RG: "a"}, newTopo().rg("a", "a1").rg("b", "b1").rg("c", "c1").rg("d").
		as("a", "a.test", 0).as("c", "c.test", 2).as("d", "d.test", 1).
		link("ab", "a", "b", 1).link("ac", "a", "c", 2).link("bc", "b", "c", 1).ext("net", "b", "", "*", 9).records())
	if err != nil {
		t.Fatal(err)
	}
	rgs := tb.RGs()
	var got []string
	for _, r := range rgs {
		var fh []string
		for _, h := range r.FirstHops {
			fh = append(fh, h.Connector)
		}
		got = append(got, r.RG+":"+strings.Join(r.Path, ">")+":"+strings.Join(fh, ","))
	}
	wantRGs := []string{"a:a:", "b:a>b:ab", "c:a>b>c:ab,ac", "d::"}
	if !slices.Equal(got, wantRGs) {
		t.Errorf("RGs = %v, want %v", got, wantRGs)
	}
	if rgs[2].Cost != 2 || rgs[3].Reachable {
		t.Errorf("RG costs: %+v", rgs)
	}
	routes := tb.Routes()
	var pats []string
	for _, r := range routes {
		pats = append(pats, r.AddressSpace+"@"+r.RG)
	}
	if want := []string{"a.test@a", "c.test@c", "d.test@d", "*@b"}; !slices.Equal(pats, want) {
		t.Errorf("routes = %v, want %v", pats, want)
	}
	if r := routes[3]; r.Exit != "net" || r.TotalCost != 10 || !r.Up {
		t.Errorf("external route: %+v", r)
	}
}

func TestRouteAlternativesBounded(t *testing.T) {
	tp := newTopo().rg("a", "a1").as("a", "a.test", 0)
	for i := 0; i < 50; i++ {
		tp.ext(fmt.Sprintf("net%02d", i), "a", "", "*", uint32(10+i))
	}
	tb, err := Compute(Self{Node: "a1", RG: "a"}, tp.records())
	if err != nil {
		t.Fatal(err)
	}
	d, err := tb.Route("m", "a.test")
	if err != nil || d.Kind != Local {
		t.Fatalf("%v\n%s", err, d.String())
	}
	if len(d.Alternatives) != MaxAlternatives || d.Omitted != 50-MaxAlternatives {
		t.Errorf("%d alternatives, %d omitted", len(d.Alternatives), d.Omitted)
	}
	d, _ = tb.Route("m", "other.test")
	if d.Connector == nil || d.Connector.ID != "net00" || d.TotalCost != 10 {
		t.Errorf("cheapest external not chosen:\n%s", d.String())
	}
}
