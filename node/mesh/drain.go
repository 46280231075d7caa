package mesh

// SetDraining makes this node drain (on) or return to service: it gossips
// the state in its metadata (membership.Meta.Draining), so the group's
// other members leave it out of their next hops, and its own routing
// table hands every decision to those members (package routing,
// drain.go). It may be called before Start (a drain that survived a
// restart).
func (m *Mesh) SetDraining(on bool) {
	if m.draining.Swap(on) == on {
		return
	}
	m.mu.Lock()
	m.meta.Draining = on
	m.mu.Unlock()
	select {
	case m.metaKick <- struct{}{}:
	default:
	}
	m.updateDraining()
}

// Draining reports whether this node drains.
func (m *Mesh) Draining() bool { return m.draining.Load() }

// DrainingMembers lists the members of this node's group that drain (this
// node included when it does), as gossip tells it.
func (m *Mesh) DrainingMembers() []string {
	var out []string
	if m.draining.Load() {
		out = append(out, m.cfg.Node)
	}
	for _, mb := range m.View().Members {
		if mb.Draining && mb.Name != m.cfg.Node {
			out = append(out, mb.Name)
		}
	}
	return out
}

// updateDraining hands the members that drain to the router (a new table
// follows when they changed).
func (m *Mesh) updateDraining() {
	if r := m.router.Load(); r != nil {
		r.SetDraining(m.DrainingMembers())
	}
}
