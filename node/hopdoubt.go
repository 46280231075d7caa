package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/pki"
	"github.com/meshd/meshd/queue"
)

// The node's side of hops in doubt (node/delivery/hopdoubt.go): it
// locates the node behind a mesh SMTP address, asks that node's port-691
// listener what it holds of a copy (delivery.Doubts), and answers the
// same question for its own queue.

// doubtAskTimeout bounds one holds request.
const doubtAskTimeout = 10 * time.Second

// doubts is the node as delivery.Doubts.
type doubts struct{ n *Node }

// Locate names the mesh node whose mesh SMTP listener is addr and its
// port-691 address ("" when no record lists it).
func (d doubts) Locate(addr string) (name, channelAddr string) {
	if d.n.mesh == nil || addr == "" {
		return "", ""
	}
	for _, r := range d.n.mesh.LSDB().Snapshot().Records() {
		for _, m := range r.Members {
			if m.SMTP == addr {
				return m.Name, m.LinkState
			}
		}
	}
	return "", ""
}

// channelOf is the port-691 address to ask about doubt: the node's as the
// LSDB lists it now (it may have moved), else the one recorded.
func (d doubts) channelOf(doubt queue.Doubt) string {
	if d.n.mesh != nil && doubt.Node != "" {
		for _, r := range d.n.mesh.LSDB().Snapshot().Records() {
			for _, m := range r.Members {
				if m.Name == doubt.Node && m.LinkState != "" {
					return m.LinkState
				}
			}
		}
	}
	return doubt.Channel
}

// Holds asks the node of doubt whether its queue holds the copy, over the
// port-691 channel (mutual TLS with a mesh identity).
func (d doubts) Holds(ctx context.Context, doubt queue.Doubt) (queue.Holding, error) {
	addr := d.channelOf(doubt)
	if addr == "" {
		return queue.Unknown, errors.New("no port-691 address known for " + doubt.Addr)
	}
	ctx, cancel := context.WithTimeout(ctx, doubtAskTimeout)
	defer cancel()
	tc := d.n.finder.TLS
	if d.n.id.enabled() && doubt.Node != "" {
		tc = d.n.id.holdsTLS(doubt.Node)
	}
	ans, err := channel.Holds(ctx, d.n.finder.Dial, tc, addr, d.n.cfg.Node.Name, []string{doubt.CopyID})
	if err != nil {
		return queue.Unknown, err
	}
	return holdingOf(ans[0]), nil
}

// holdsTLS is the client TLS of a holds request to node: its certificate
// must be the organisation's and name that node, the one that took the
// copy. Unlike tracking it does not need the LSDB to list the node: a node
// that was just restarted may be missing from another group's copy of its
// group's record for a while, and it is exactly the node to ask then.
func (id *identity) holdsTLS(node string) *tls.Config {
	c := id.pki.ClientConfig(func(p pki.Identity) error {
		if p.Node != node {
			return fmt.Errorf("node: holds request for %s answered by %s", node, p)
		}
		return nil
	})
	verify := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verify(cs); err != nil {
			id.refused.WithLabelValues("holds").Inc()
			id.n.log.Warn("refusing mesh peer: its certificate does not name the node asked", "channel", "holds", "peer", cs.ServerName, "err", err)
			return err
		}
		return nil
	}
	return c
}

// answerHolds serves the holds requests of the port-691 listener from the
// queue's committed state (queue.Holds), never from the tracking log,
// which is not synced. A queue error answers nothing (the sender's doubt
// stays) rather than "unknown", which would send the copy again.
func (n *Node) answerHolds(_ context.Context, ids []string) []channel.Held {
	out := make([]channel.Held, len(ids))
	for i, id := range ids {
		h, err := n.q.Holds(id)
		if err == nil {
			out[i], err = n.heldOf(id, h) // shadow.go
		}
		if err != nil {
			n.log.Warn("holds request: queue", "copy", id, "err", err)
			return nil
		}
	}
	return out
}

// InDoubt counts a hop in doubt (delivery.Metrics).
func (m *metrics) InDoubt(result string) { m.mesh.inDoubt.WithLabelValues(result).Inc() }

// ReplyLost counts a transaction outside the mesh whose reply never came (delivery.Metrics).
func (m *metrics) ReplyLost(kind string) { m.replyLost.WithLabelValues(kind).Inc() }
