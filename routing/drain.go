package routing

import (
	"fmt"
	"slices"
	"strings"
)

// A node drains (meshctl node drain) to leave service without losing
// mail: it takes no new mail and hands everything it holds to another
// member of its routing group. Routing sees the members that drain
// (Router.SetDraining, from the group's gossip metadata):
//
//   - on a member that drains, every decision becomes a hand-off: Kind
//     Intra, NextHops the group's other members that do not drain, spread
//     by the message hash; the decision it replaces stays in the rest of
//     the Decision (address space, path, connector, costs) and its kind in
//     Drain.Instead, so a trace still says where the mail is going. Only a
//     domain that is not one (ReasonInvalidDomain) or whose group was
//     removed (ReasonRemoved) keeps its refusal. With no member to take it
//     the mail waits (NoRoute, ReasonDraining);
//   - on the other members, a member that drains is no source bridgehead:
//     it is left out of Intra next hops.
//
// Other routing groups learn nothing from here: they see the drained
// node's bridgehead pairs go down (it answers new sessions 421) and go
// around it like any down target.

// DrainHandOff says how a draining node's decision was turned into a
// hand-off (Decision.Drain).
type DrainHandOff struct {
	// Instead is what the node would have done without the drain
	// (local, intra, remote, external, or noroute).
	Instead Kind `json:"instead"`
	// Why is the refusal a NoRoute decision carried (Refused, Why) before
	// it was handed off.
	Why string `json:"why,omitempty"`
	// Draining lists the members of the group that drain (this one
	// included), none of which is a next hop.
	Draining []string `json:"draining"`
}

// String renders the hand-off for Decision.Lines.
func (h *DrainHandOff) String(node, rg string) string {
	s := fmt.Sprintf("draining: %s hands this mail to another member of %s instead of %s", node, rg, h.Instead)
	if h.Why != "" {
		s += " (" + h.Why + ")"
	}
	if others := slices.DeleteFunc(slices.Clone(h.Draining), func(n string) bool { return n == node }); len(others) > 0 {
		s += "; also draining, left out: " + strings.Join(others, ", ")
	}
	return s
}

// Draining reports whether this node drains.
func (t *Table) Draining() bool { return t.draining[t.self.Node] }

// DrainingMembers lists the members of this node's group that drain.
func (t *Table) DrainingMembers() []string {
	out := make([]string, 0, len(t.draining))
	for n := range t.draining {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func drainSet(nodes []string) map[string]bool {
	if len(nodes) == 0 {
		return nil
	}
	m := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		m[n] = true
	}
	return m
}

// handOff turns the decision of a draining node into a hand-off to the
// group's other members (see the top of this file).
func (t *Table) handOff(d Decision, err error) (Decision, error) {
	if d.Refused == ReasonInvalidDomain || d.Refused == ReasonRemoved {
		return d, err
	}
	ho := &DrainHandOff{Instead: d.Kind, Draining: t.DrainingMembers()}
	if d.Kind == NoRoute {
		ho.Why = d.Why
		d.Refused, d.Why = 0, ""
	}
	d.Drain = ho
	d.NextHops, d.MX = nil, false
	hops := t.handOffMembers()
	if len(hops) == 0 {
		d.Kind = NoRoute
		d.Refused = ReasonDraining
		d.Why = fmt.Sprintf("node %s drains and no other member of %s that does not drain is in its record to take its mail; it waits here", t.self.Node, t.self.RG)
		return d, fmt.Errorf("routing: route %s: %s: %w", d.Domain, d.Why, ErrNoRoute)
	}
	d.Kind = Intra
	d.NextHops = spread(hops, len(hops), spreadHash(d.MessageID, d.Domain), saltSource)
	return d, nil
}

// handOffMembers are the members of the local record, other than this
// node, that do not drain and have a mesh SMTP address, by name.
func (t *Table) handOffMembers() []Hop {
	rec := t.localRecord()
	if rec == nil {
		return nil
	}
	var hops []Hop
	for _, m := range rec.Members {
		if m.Name == t.self.Node || t.draining[m.Name] || m.SMTP == "" {
			continue
		}
		hops = append(hops, Hop{Node: m.Name, Addr: m.SMTP, Up: true})
	}
	slices.SortFunc(hops, func(a, b Hop) int { return strings.Compare(a.Node, b.Node) })
	return hops
}
