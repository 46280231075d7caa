package node

import (
	"github.com/meshd/meshd/node/delivery"
	"github.com/meshd/meshd/node/holds"
)

// newDeliverer builds the delivery scheduler (package delivery) from the
// node's parts: the queue, the clock, the relay policy's local domains,
// the mesh's routes, the tracking log and the metrics.
func (n *Node) newDeliverer(opts Options) (*delivery.Deliverer, error) {
	deps := delivery.Deps{
		Queue: n.q, Log: n.log, Now: n.now,
		Local: n.policy, Track: n.trk, Metrics: n.metrics,
		Resolver: opts.Resolver, Dial: opts.Dial, OutboundTLS: opts.OutboundTLS,
		CopyKey: n.copyKey, Sign: n.dkim.Sign,
	}
	if n.mesh != nil {
		deps.Mesh = n.mesh
		a := &holds.Asker{Mesh: n.mesh, Self: n.cfg.Node.Name, Dial: n.finder.Dial, TLS: n.finder.TLS}
		if n.id.Enabled() {
			a.NodeTLS = n.id.HoldsTLS
		}
		deps.Doubts = a
		deps.Peers = n.peers
	}
	if n.id.Enabled() {
		deps.HopTLS = n.id.ClientTLS("hop", false)
	}
	return delivery.New(n.cfg, deps)
}

// MXResolver looks up the mail exchangers of a domain (delivery.MXResolver).
type MXResolver = delivery.MXResolver
