package linkstate

// ConnectorKey names a connector in the organisation.
type ConnectorKey struct {
	From string // RG the connector belongs to
	ID   string
}

// Bridges returns the connectors that are the only path between their
// ends in the RG graph of records, whatever their up/down state. The
// graph is taken as undirected with the two directions of a link merged
// (A→B and B→A are one link {A,B}); bridges of that graph are found with
// Tarjan's low-link method in O(RGs + links). A connector A→B is a bridge
// when {A,B} is a bridge link and it is the only connector from A to B:
// every path from A to B then has to cross that link in the A→B direction.
//
// This is sound but not complete for one-way topologies: every connector
// reported is the only path, while in a graph that is connected only one
// way round a cycle some only-paths are not found (they are advertised as
// usual). External connectors (no To) and connectors to a tombstoned RG
// are never bridges.
func Bridges(records []*Record) map[ConnectorKey]bool {
	ids := map[string]int{}
	node := func(rg string) int {
		i, ok := ids[rg]
		if !ok {
			i = len(ids)
			ids[rg] = i
		}
		return i
	}
	dead := map[string]bool{} // deleted RGs: connectors to them lead nowhere
	for _, r := range records {
		if r.Tombstone {
			dead[r.RG] = true
		}
	}
	type link struct{ a, b int }
	directed := map[link]int{} // connectors per ordered pair
	var adj [][]int
	seen := map[link]bool{}
	for _, r := range records {
		if r.Tombstone {
			continue
		}
		from := node(r.RG)
		for i := range r.Connectors {
			k := &r.Connectors[i]
			if k.To == "" || k.To == r.RG || dead[k.To] {
				continue
			}
			to := node(k.To)
			directed[link{from, to}]++
			u := link{min(from, to), max(from, to)}
			if seen[u] {
				continue
			}
			seen[u] = true
			for len(adj) < len(ids) {
				adj = append(adj, nil)
			}
			adj[from] = append(adj[from], to)
			adj[to] = append(adj[to], from)
		}
	}
	for len(adj) < len(ids) {
		adj = append(adj, nil)
	}

	bridgeLinks := tarjanBridges(adj)
	out := map[ConnectorKey]bool{}
	for _, r := range records {
		if r.Tombstone {
			continue
		}
		from := ids[r.RG]
		for i := range r.Connectors {
			k := &r.Connectors[i]
			if k.To == "" || k.To == r.RG || dead[k.To] {
				continue
			}
			to := ids[k.To]
			if bridgeLinks[[2]int{min(from, to), max(from, to)}] && directed[link{from, to}] == 1 {
				out[ConnectorKey{From: r.RG, ID: k.ID}] = true
			}
		}
	}
	return out
}

// tarjanBridges returns the bridges of a simple undirected graph given as
// adjacency lists, as {min, max} vertex pairs. Iterative, so deep graphs
// cannot exhaust the stack.
func tarjanBridges(adj [][]int) map[[2]int]bool {
	n := len(adj)
	disc := make([]int, n) // discovery time, 0 = unvisited
	low := make([]int, n)
	type frame struct{ v, parent, next int }
	var stack []frame
	bridges := map[[2]int]bool{}
	timer := 0
	for s := range n {
		if disc[s] != 0 {
			continue
		}
		timer++
		disc[s], low[s] = timer, timer
		stack = append(stack[:0], frame{v: s, parent: -1})
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.next < len(adj[f.v]) {
				w := adj[f.v][f.next]
				f.next++
				switch {
				case w == f.parent:
				case disc[w] == 0:
					timer++
					disc[w], low[w] = timer, timer
					stack = append(stack, frame{v: w, parent: f.v})
				default:
					low[f.v] = min(low[f.v], disc[w])
				}
				continue
			}
			v, p := f.v, f.parent
			stack = stack[:len(stack)-1]
			if p >= 0 {
				low[p] = min(low[p], low[v])
				if low[v] > disc[p] {
					bridges[[2]int{min(p, v), max(p, v)}] = true
				}
			}
		}
	}
	return bridges
}
