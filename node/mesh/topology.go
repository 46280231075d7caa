package mesh

import (
	"slices"
	"time"

	"github.com/meshd/meshd/linkstate"
)

// Topology is the part of a node's mesh configuration that changes while
// it runs (a new organisation document): its group's connectors, the
// group's address spaces, the record TTL and refresh period, and the
// node's election priority. Config holds the first one; SetTopology
// replaces it.
type Topology struct {
	Connectors  []Connector
	LocalSpaces []linkstate.AddressSpace
	TTL         time.Duration
	Refresh     time.Duration
	Priority    uint32
}

// topology is the one in force (cfg's until SetTopology, also for a
// Mesh built by hand in a test).
func (m *Mesh) topology() *Topology {
	if t := m.topo.Load(); t != nil {
		return t
	}
	return m.cfg.topology()
}

func (c *Config) topology() *Topology {
	return &Topology{Connectors: slices.Clone(c.Connectors), LocalSpaces: slices.Clone(c.LocalSpaces),
		TTL: c.TTL, Refresh: c.Refresh, Priority: c.Priority}
}

// SetTopology puts t in force: the prober watches the new connectors'
// pairs, bridgeheads sync with the new targets, and a master originates a
// record with the new connectors (a Major version: the whole mesh
// recomputes its routes). Zero TTL and Refresh keep the ones in force.
func (m *Mesh) SetTopology(t Topology) {
	old := m.topology()
	if t.TTL <= 0 {
		t.TTL = old.TTL
	}
	if t.Refresh <= 0 {
		t.Refresh = old.Refresh
	}
	t.Connectors, t.LocalSpaces = slices.Clone(t.Connectors), slices.Clone(t.LocalSpaces)
	m.topo.Store(&t)
	if t.Priority != old.Priority {
		m.mu.Lock()
		m.meta.Priority = t.Priority
		m.mu.Unlock()
		select {
		case m.metaKick <- struct{}{}:
		default:
		}
	}
	if m.probe != nil {
		m.probe.reconfigure()
	}
	m.poke()
	if m.syncer != nil {
		m.syncer.trigger()
	}
}
