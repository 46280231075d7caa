package admin

import (
	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/membership"
	"github.com/meshd/meshd/node/status"
)

// statusSource adapts the node's parts to status.Source and status.AdminSource.
type statusSource struct{ a *api }

func (s statusSource) Snapshot() []*linkstate.Record {
	if s.a.Mesh == nil {
		return nil
	}
	return s.a.Mesh.LSDB().Snapshot().Records()
}

func (s statusSource) Digest() [32]byte {
	if s.a.Mesh == nil {
		return [32]byte{}
	}
	return s.a.Mesh.LSDB().Snapshot().Digest()
}

func (s statusSource) Self() (string, string) { return s.a.Node, s.a.RG }

func (s statusSource) View() membership.View {
	if s.a.Mesh == nil {
		return membership.View{}
	}
	return s.a.Mesh.View()
}

func (s statusSource) Penalties() map[string]float64 {
	if s.a.Mesh == nil {
		return nil
	}
	return s.a.Mesh.Penalties()
}

func (s statusSource) AdminStates() map[string]string {
	if s.a.Mesh == nil {
		return nil
	}
	return s.a.Mesh.AdminStates()
}

func (s statusSource) Queues() []status.QueueSummary {
	var out []status.QueueSummary
	for _, q := range s.a.Delivery.NextHops() {
		out = append(out, status.QueueSummary{NextHop: q.Hop, Messages: q.Messages, OldestAge: q.Oldest})
	}
	return out
}

// DrainStatus tells the page whether the node drains (status.DrainSource).
func (s statusSource) DrainStatus() adminapi.DrainStatus {
	if s.a.Drain == nil {
		return adminapi.DrainStatus{}
	}
	return s.a.Drain.DrainStatus()
}
