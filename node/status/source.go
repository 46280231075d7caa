package status

import (
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/membership"
)

// Source is what the status page reads from a running node. Every method
// is called once per request and must be safe for concurrent use; the
// values returned are not modified by this package.
type Source interface {
	// Snapshot returns the live link-state records (the LSDB without
	// tombstones), in any order.
	Snapshot() []*linkstate.Record
	// Digest returns the LSDB digest (linkstate.Snapshot.Digest).
	Digest() [32]byte
	// Self names this node and its routing group.
	Self() (node, rg string)
	// View returns the gossip membership of this node's routing group.
	View() membership.View
	// Queues summarises the outbound queue per next hop.
	Queues() []QueueSummary
	// Penalties returns the flap-damping penalty of each connector of
	// this node's routing group, keyed by connector ID. Connectors
	// without a damper are absent.
	Penalties() map[string]float64
}

// AdminSource is implemented by a Source that knows the operator's
// overrides of its routing group's connectors (meshctl connector
// up|down|drain). AdminStates maps connector ID to "down" or "drain";
// connectors in automatic mode are absent.
type AdminSource interface {
	AdminStates() map[string]string
}

// DrainSource is implemented by a Source that can tell whether its node
// drains (meshctl node drain); the page then says so, and what is left.
type DrainSource interface {
	DrainStatus() adminapi.DrainStatus
}

// QueueSummary is the outbound queue towards one next hop.
type QueueSummary struct {
	NextHop   string        // e.g. "rg2 via 127.0.0.1:2526", "local", "mx example.org"
	Messages  int           // messages waiting for this next hop
	OldestAge time.Duration // age of the oldest of them; 0 when empty
}
