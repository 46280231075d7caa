package holds

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/queue"
)

// doubtAskTimeout bounds one holds request.
const doubtAskTimeout = 10 * time.Second

// LSDB is where the nodes' addresses are read (node/mesh.Mesh).
type LSDB interface {
	LSDB() *linkstate.LSDB
}

// Asker asks other nodes about copies in doubt (delivery.Doubts).
type Asker struct {
	Mesh LSDB
	Self string // this node's name, in the request
	Dial channel.Dialer
	TLS  *tls.Config // the port-691 client TLS (nil: plain, mesh.insecure_plaintext)
	// NodeTLS, when set (mesh identities), is the TLS of a request to
	// one node: its certificate must name that node (identity.Node.HoldsTLS).
	NodeTLS func(node string) *tls.Config
}

// Locate names the mesh node whose mesh SMTP listener is addr and its
// port-691 address ("" when no record lists it).
func (d *Asker) Locate(addr string) (name, channelAddr string) {
	if addr == "" {
		return "", ""
	}
	for _, r := range d.Mesh.LSDB().Snapshot().Records() {
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
func (d *Asker) channelOf(doubt queue.Doubt) string {
	if doubt.Node != "" {
		for _, r := range d.Mesh.LSDB().Snapshot().Records() {
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
func (d *Asker) Holds(ctx context.Context, doubt queue.Doubt) (queue.Holding, error) {
	addr := d.channelOf(doubt)
	if addr == "" {
		return queue.Unknown, errors.New("no port-691 address known for " + doubt.Addr)
	}
	ctx, cancel := context.WithTimeout(ctx, doubtAskTimeout)
	defer cancel()
	tc := d.TLS
	if d.NodeTLS != nil && doubt.Node != "" {
		tc = d.NodeTLS(doubt.Node)
	}
	ans, err := channel.Holds(ctx, d.Dial, tc, addr, d.Self, []string{doubt.CopyID})
	if err != nil {
		return queue.Unknown, err
	}
	switch ans[0] {
	case channel.HeldQueued:
		return queue.Queued, nil
	case channel.HeldDone:
		return queue.Done, nil
	}
	return queue.Unknown, nil
}

// Queue is the queue's committed state (queue.Queue).
type Queue interface {
	Holds(id string) (queue.Holding, error)
}

// Answer serves the holds requests of the port-691 listener
// (mesh.Config.Holds) from the queue's committed state (queue.Holds),
// never from the tracking log, which is not synced. A queue error answers
// nothing (the sender's doubt stays) rather than "unknown", which would
// send the copy again.
func Answer(q Queue, log *slog.Logger) func(context.Context, []string) []channel.Held {
	return func(_ context.Context, ids []string) []channel.Held { return answer(q, log, ids) }
}

func answer(q Queue, log *slog.Logger, ids []string) []channel.Held {
	out := make([]channel.Held, len(ids))
	for i, id := range ids {
		h, err := q.Holds(id)
		if err != nil {
			log.Warn("holds request: queue", "copy", id, "err", err)
			return nil
		}
		switch h {
		case queue.Queued:
			out[i] = channel.HeldQueued
		case queue.Done:
			out[i] = channel.HeldDone
		}
	}
	return out
}
