package node

import (
	"github.com/meshd/meshd/node/delivery"
	"github.com/meshd/meshd/queue"
)

// newDeliverer builds the delivery scheduler (package delivery) from the
// node's parts: the queue, the clock, the relay policy's local domains,
// the mesh's routes, the tracking log and the metrics.
func (n *Node) newDeliverer(opts Options) (*delivery.Deliverer, error) {
	deps := delivery.Deps{
		Queue: n.q, Log: n.log, Now: n.now,
		Local: n.policy, Track: n.trk, Metrics: n.metrics,
		Resolver: opts.Resolver, Dial: opts.Dial, OutboundTLS: opts.OutboundTLS,
		CopyKey: n.copyKey, Sign: n.signOutbound,
	}
	if n.mesh != nil {
		deps.Mesh = n.mesh
		deps.Doubts = doubts{n}
		deps.Peers = n.peers
	}
	if n.id.enabled() {
		deps.HopTLS = n.id.clientTLS("hop", false)
	}
	return delivery.New(n.cfg, deps)
}

// MXResolver looks up the mail exchangers of a domain (delivery.MXResolver).
type MXResolver = delivery.MXResolver

// The node's metrics count delivery's outcomes (delivery.Metrics).

func (m *metrics) Outcome(kind string, o queue.Outcome) {
	switch o {
	case queue.Delivered:
		m.delivered.WithLabelValues(kind).Inc()
	case queue.TempFail:
		m.deferred.WithLabelValues(kind).Inc()
	case queue.PermFail:
		m.bounced.WithLabelValues(kind).Inc()
	}
}

func (m *metrics) Expired(rcpts int)     { m.expired.Add(float64(rcpts)) }
func (m *metrics) DSNQueued(kind string) { m.dsnSent.WithLabelValues(kind).Inc() }
func (m *metrics) DeadSkip()             { m.deadSkips.Inc() }
