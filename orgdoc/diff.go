package orgdoc

import (
	"fmt"
	"reflect"
	"strings"
)

// Diff lists what changed from a to b, one line per change, in the
// document's order: "+ connector rga/to-c (rga -> rgc, cost 5)",
// "~ connector rga/to-b: cost 10 -> 3", "- routing group rgd". a may be
// nil (everything in b is new).
func Diff(a, b *Document) []string {
	if a == nil {
		a = &Document{}
	}
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if a.Version != b.Version {
		add("~ version %d -> %d", a.Version, b.Version)
	}
	if a.Settings != b.Settings {
		add("~ settings: %+v -> %+v", a.Settings, b.Settings)
	}
	ag, bg := index(a.RoutingGroups, func(g RoutingGroup) string { return g.Name }), index(b.RoutingGroups, func(g RoutingGroup) string { return g.Name })
	for _, g := range a.RoutingGroups {
		if _, ok := bg[g.Name]; !ok {
			add("- routing group %s", g.Name)
		}
	}
	for _, g := range b.RoutingGroups {
		old, ok := ag[g.Name]
		if !ok {
			add("+ routing group %s (domains %s, %d nodes)", g.Name, strings.Join(g.Domains, ","), len(g.Nodes))
			continue
		}
		if !reflect.DeepEqual(old.Domains, g.Domains) {
			add("~ routing group %s: domains %v -> %v", g.Name, old.Domains, g.Domains)
		}
		if !reflect.DeepEqual(old.PublicKeys, g.PublicKeys) {
			add("~ routing group %s: public keys %v -> %v", g.Name, old.PublicKeys, g.PublicKeys)
		}
		an, bn := index(old.Nodes, func(n Node) string { return n.Name }), index(g.Nodes, func(n Node) string { return n.Name })
		for _, n := range old.Nodes {
			if _, ok := bn[n.Name]; !ok {
				add("- node %s/%s", g.Name, n.Name)
			}
		}
		for _, n := range g.Nodes {
			if o, ok := an[n.Name]; !ok {
				add("+ node %s/%s (mesh %s)", g.Name, n.Name, n.Mesh)
			} else if o != n {
				add("~ node %s/%s: %+v -> %+v", g.Name, n.Name, o, n)
			}
		}
	}
	key := func(c Connector) string { return c.From + "/" + c.Name }
	ac, bc := index(a.Connectors, key), index(b.Connectors, key)
	for _, c := range a.Connectors {
		if _, ok := bc[key(c)]; !ok {
			add("- connector %s", key(c))
		}
	}
	for _, c := range b.Connectors {
		o, ok := ac[key(c)]
		switch {
		case !ok:
			add("+ connector %s (%s -> %s, cost %d)", key(c), c.From, orExternal(c.To), c.Cost)
		case o.Cost != c.Cost && reflect.DeepEqual(withCost(o, c.Cost), c):
			add("~ connector %s: cost %d -> %d", key(c), o.Cost, c.Cost)
		case !reflect.DeepEqual(o, c):
			add("~ connector %s: %+v -> %+v", key(c), o, c)
		}
	}
	return out
}

func withCost(c Connector, cost uint32) Connector { c.Cost = cost; return c }

func orExternal(to string) string {
	if to == "" {
		return "external"
	}
	return to
}

func index[T any](s []T, key func(T) string) map[string]T {
	m := make(map[string]T, len(s))
	for _, v := range s {
		m[key(v)] = v
	}
	return m
}
