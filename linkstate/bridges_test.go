package linkstate

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// graph builds records from "A>B" connector specs (ID "A>B", or "A>B#2"
// for a parallel one); "A>" is an external connector.
func graph(specs ...string) []*Record {
	byRG := map[string]*Record{}
	var order []*Record
	get := func(rg string) *Record {
		if r, ok := byRG[rg]; ok {
			return r
		}
		r := &Record{RG: rg}
		byRG[rg] = r
		order = append(order, r)
		return r
	}
	for _, s := range specs {
		var from, to string
		for i := range len(s) {
			if s[i] == '>' {
				from, to = s[:i], s[i+1:]
			}
		}
		if j := indexByte(to, '#'); j >= 0 {
			to = to[:j]
		}
		r := get(from)
		r.Connectors = append(r.Connectors, Connector{ID: s, From: from, To: to, Cost: 1})
	}
	return order
}

func indexByte(s string, c byte) int {
	for i := range len(s) {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func keys(m map[ConnectorKey]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k.ID)
	}
	sortStrings(out)
	return out
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestBridges(t *testing.T) {
	tests := []struct {
		name  string
		specs []string
		want  []string
	}{
		{"empty", nil, nil},
		{"one link both ways", []string{"A>B", "B>A"}, []string{"A>B", "B>A"}},
		{"one way only", []string{"A>B"}, []string{"A>B"}},
		{"triangle has none", []string{"A>B", "B>A", "B>C", "C>B", "C>A", "A>C"}, nil},
		{"parallel connectors are not bridges", []string{"A>B", "A>B#2", "B>A"}, []string{"B>A"}},
		{"chain", []string{"A>B", "B>A", "B>C", "C>B"}, []string{"A>B", "B>A", "B>C", "C>B"}},
		{"triangle with a tail", []string{"A>B", "B>A", "B>C", "C>B", "C>A", "A>C", "C>D", "D>C"}, []string{"C>D", "D>C"}},
		{"two triangles joined by one link", []string{
			"A>B", "B>A", "B>C", "C>B", "C>A", "A>C",
			"D>E", "E>D", "E>F", "F>E", "F>D", "D>F",
			"C>D", "D>C",
		}, []string{"C>D", "D>C"}},
		{"external connectors are never bridges", []string{"A>", "A>B", "B>A"}, []string{"A>B", "B>A"}},
		{"target RG without a record", []string{"A>B", "B>A", "B>Z"}, []string{"A>B", "B>A", "B>Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keys(Bridges(graph(tt.specs...)))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Bridges = %v, want %v", got, tt.want)
			}
		})
	}
	// A tombstoned RG takes its connectors and those to it out of the graph.
	recs := graph("A>B", "B>A", "B>C", "C>B", "C>A", "A>C")
	recs[2].Tombstone = true // C
	if got := keys(Bridges(recs)); !reflect.DeepEqual(got, []string{"A>B", "B>A"}) {
		t.Errorf("with C tombstoned: %v", got)
	}
}

// reachableWithout reports whether to is reachable from from over the
// directed connectors of recs, not using skip.
func reachableWithout(recs []*Record, from, to string, skip ConnectorKey) bool {
	adj := map[string][]string{}
	for _, r := range recs {
		for _, k := range r.Connectors {
			if k.To != "" && (ConnectorKey{r.RG, k.ID}) != skip {
				adj[r.RG] = append(adj[r.RG], k.To)
			}
		}
	}
	seen := map[string]bool{from: true}
	queue := []string{from}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		if v == to {
			return true
		}
		for _, w := range adj[v] {
			if !seen[w] {
				seen[w] = true
				queue = append(queue, w)
			}
		}
	}
	return false
}

// TestBridgesAgainstReachability checks Bridges against brute force on
// random graphs: on symmetric graphs (every connector has a reverse, the
// usual configuration) the answer is exact; on arbitrary directed graphs
// every connector reported really is the only path between its ends.
func TestBridgesAgainstReachability(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	iterations := 2000
	if testing.Short() {
		iterations = 200
	}
	for it := range iterations {
		n := 2 + rnd.IntN(9)
		symmetric := it%2 == 0
		var specs []string
		edges := rnd.IntN(2 * n)
		for e := range edges {
			a, b := rnd.IntN(n), rnd.IntN(n)
			if a == b {
				continue
			}
			specs = append(specs, fmt.Sprintf("R%d>R%d#%d", a, b, e))
			if symmetric {
				specs = append(specs, fmt.Sprintf("R%d>R%d#%dr", b, a, e))
			}
		}
		recs := graph(specs...)
		got := Bridges(recs)
		for _, r := range recs {
			for _, k := range r.Connectors {
				key := ConnectorKey{r.RG, k.ID}
				only := !reachableWithout(recs, r.RG, k.To, key)
				if got[key] && !only {
					t.Fatalf("iteration %d %v: %s reported as bridge but another path exists", it, specs, k.ID)
				}
				if symmetric && only && !got[key] {
					t.Fatalf("iteration %d %v: %s is the only path but not reported", it, specs, k.ID)
				}
			}
		}
	}
}
