package status

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/linkstate"
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name), got)
}

func TestGraphGolden(t *testing.T) {
	ab := linkstate.ConnectorKey{From: "a", ID: "ab"}
	ac := linkstate.ConnectorKey{From: "a", ID: "ac"}
	tests := []struct {
		name string
		recs []*linkstate.Record
		opts GraphOptions
	}{
		{"mesh.dot", meshRecords(true), GraphOptions{LocalRG: "a",
			Admin: map[linkstate.ConnectorKey]string{ac: "drain"}, Penalties: map[linkstate.ConnectorKey]float64{ab: 1500}}},
		{"mesh_ab_down.dot", meshRecords(false), GraphOptions{LocalRG: "a", NoLegend: true}},
		{"empty.dot", nil, GraphOptions{}},
		{"ghost.dot", []*linkstate.Record{
			{RG: `odd "rg"\`, Master: "n1", Members: []linkstate.Member{{Name: "n1"}},
				Connectors: []linkstate.Connector{{ID: "gone", From: `odd "rg"\`, To: "vanished", Cost: 1}}},
			{RG: "dead", Tombstone: true},
			nil,
		}, GraphOptions{NoLegend: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Graph(tt.recs, tt.opts)
			golden(t, tt.name, got)
			again := Graph(tt.recs, tt.opts)
			if !bytes.Equal(got, again) {
				t.Fatal("Graph is not deterministic")
			}
		})
	}
}

// TestGraphOrderIndependent: the same LSDB in any order, with members,
// connectors and pairs shuffled, gives the same bytes.
func TestGraphOrderIndependent(t *testing.T) {
	a := meshRecords(true)
	b := meshRecords(true)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	for _, r := range b {
		for i, j := 0, len(r.Connectors)-1; i < j; i, j = i+1, j-1 {
			r.Connectors[i], r.Connectors[j] = r.Connectors[j], r.Connectors[i]
		}
		for i, j := 0, len(r.Members)-1; i < j; i, j = i+1, j-1 {
			r.Members[i], r.Members[j] = r.Members[j], r.Members[i]
		}
	}
	if ga, gb := Graph(a, GraphOptions{}), Graph(b, GraphOptions{}); !bytes.Equal(ga, gb) {
		t.Fatalf("order changed the output:\n%s\n---\n%s", ga, gb)
	}
}

func TestConnectorState(t *testing.T) {
	up := []linkstate.PairState{{Source: "a1", Target: "t", Up: true}}
	down := []linkstate.PairState{{Source: "a1", Target: "t"}, {Source: "a2", Target: "t"}}
	mixed := []linkstate.PairState{{Source: "a1", Target: "t"}, {Source: "a2", Target: "t", Up: true}}
	tests := []struct {
		name  string
		c     linkstate.Connector
		admin string
		want  State
	}{
		{"no pairs observed", linkstate.Connector{}, "", StateUp},
		{"one pair up", linkstate.Connector{Pairs: up}, "", StateUp},
		{"one of two up", linkstate.Connector{Pairs: mixed}, "", StateUp},
		{"all pairs down", linkstate.Connector{Pairs: down}, "", StateDown},
		{"suppressed while up", linkstate.Connector{Pairs: up, Suppressed: true}, "", StateSuppressed},
		{"suppressed and down", linkstate.Connector{Pairs: down, Suppressed: true}, "", StateSuppressed},
		{"bridge up", linkstate.Connector{Pairs: up, Bridge: true}, "", StateUp},
		{"bridge pairs down", linkstate.Connector{Pairs: down, Bridge: true}, "", StateHeld},
		{"bridge suppressed", linkstate.Connector{Pairs: up, Bridge: true, Suppressed: true}, "", StateUp},
		{"admin down", linkstate.Connector{Pairs: up}, "down", StateDown},
		{"admin drain", linkstate.Connector{Pairs: up}, "drain", StateDrain},
		{"admin drain but down", linkstate.Connector{Pairs: down}, "drain", StateDown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ConnectorState(&tt.c, tt.admin); got != tt.want {
				t.Errorf("ConnectorState = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{"two\nlines", `"two\nlines"`},
		{`say "hi"`, `"say \"hi\""`},
		{`back\slash`, `"back\\slash"`},
		{`trail\`, `"trail\\"`},
		{"cr\r\n", `"cr\n"`},
	}
	for _, tt := range tests {
		if got := quote(tt.in); got != tt.want {
			t.Errorf("quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestGraphEdges(t *testing.T) {
	dot := string(Graph(meshRecords(false), GraphOptions{}))
	for _, want := range []string{
		`"rg:a" -> "rg:b" [id="conn-a-ab", class="conn state-down", color="#d62728"`,
		`"rg:b" -> "rg:c" [id="conn-b-bc", class="conn state-suppressed", color="#ff8c00"`,
		`"rg:c" -> "rg:d" [id="conn-c-cd", class="conn state-held"`,
		`"rg:a" -> "ext:internet"`,
		`"rg:c" -> "ext:smarthost:127.0.0.1:2500"`,
		`label="a\nmaster a1\nversion 1.2.7.1\nmembers a1, a2\ndomains a.test (1)"`,
	} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT lacks %s\n%s", want, dot)
		}
	}
}
