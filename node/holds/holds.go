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

// RecentMembers is the mesh's memory of the nodes records listed within
// their TTL (node/mesh.Mesh.RecentMemberAt; docs/shadow.md).
type RecentMembers interface {
	RecentMemberAt(addr string) (name, channelAddr string)
}

// Locate names the mesh node whose mesh SMTP listener is addr and its
// port-691 address ("" when no record lists it). A node its group's
// current record leaves out (its master restarted with an empty view) is
// found in the records that listed it within their TTL, when the mesh
// remembers them (RecentMembers): it is alive and may hold the copy.
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
	if rm, ok := d.Mesh.(RecentMembers); ok {
		return rm.RecentMemberAt(addr)
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
	ans, err := d.HoldsAt(ctx, doubt.Node, addr, []string{doubt.CopyID})
	if err != nil {
		return queue.Unknown, err
	}
	return ans[0], nil
}

// HoldsAt asks node's port-691 listener at addr what it holds of ids, one
// answer per ID (mutual TLS with identities: the certificate must name
// node; "" names none). The shadow watcher and the group check of suspect
// copies ask this way (docs/shadow.md).
func (d *Asker) HoldsAt(ctx context.Context, node, addr string, ids []string) ([]queue.Holding, error) {
	if addr == "" {
		return nil, errors.New("no port-691 address known for " + node)
	}
	ctx, cancel := context.WithTimeout(ctx, doubtAskTimeout)
	defer cancel()
	tc := d.TLS
	if d.NodeTLS != nil && node != "" {
		tc = d.NodeTLS(node)
	}
	ans, err := channel.Holds(ctx, d.Dial, tc, addr, d.Self, ids)
	if err != nil {
		return nil, err
	}
	out := make([]queue.Holding, len(ans))
	for i, a := range ans {
		out[i] = holdingOf(a)
	}
	return out, nil
}

// holdingOf is the queue's word for a holds answer.
func holdingOf(a channel.Held) queue.Holding {
	switch a {
	case channel.HeldQueued:
		return queue.Queued
	case channel.HeldQueuedSuspect:
		return queue.QueuedSuspect
	case channel.HeldDone:
		return queue.Done
	case channel.HeldRelayed:
		return queue.Relayed
	}
	return queue.Unknown
}

// Queue is the queue's committed state (queue.Queue).
type Queue interface {
	Holds(id string) (queue.Holding, error)
	Get(id string) (*queue.Message, error)
}

// Answer serves the holds requests of the port-691 listener
// (mesh.Config.Holds) from the queue's committed state (queue.Holds),
// never from the tracking log, which is not synced. A queue error answers
// nothing (the sender's doubt stays) rather than "unknown", which would
// send the copy again. suspect says whether a queued copy is suspect here
// (delivery.Suspect): the answer says so, for the group check's tie-break
// between two suspect twins (docs/shadow.md); nil: never.
func Answer(q Queue, suspect func(*queue.Message) bool, log *slog.Logger) func(context.Context, []string) []channel.Held {
	return func(_ context.Context, ids []string) []channel.Held { return answer(q, suspect, log, ids) }
}

func answer(q Queue, suspect func(*queue.Message) bool, log *slog.Logger, ids []string) []channel.Held {
	out := make([]channel.Held, len(ids))
	for i, id := range ids {
		h, err := q.Holds(id)
		if err == nil {
			out[i], err = heldOf(q, suspect, id, h)
		}
		if err != nil {
			log.Warn("holds request: queue", "copy", id, "err", err)
			return nil
		}
	}
	return out
}

// heldOf is the holds answer for what the queue holds of id.
func heldOf(q Queue, suspect func(*queue.Message) bool, id string, h queue.Holding) (channel.Held, error) {
	switch h {
	case queue.Queued:
		if suspect == nil {
			return channel.HeldQueued, nil
		}
		m, err := q.Get(id)
		if errors.Is(err, queue.ErrNotFound) {
			return channel.HeldDone, nil // left the queue since: its marker remembers it
		}
		if err != nil {
			return 0, err
		}
		if suspect(m) {
			return channel.HeldQueuedSuspect, nil
		}
		return channel.HeldQueued, nil
	case queue.QueuedSuspect:
		return channel.HeldQueuedSuspect, nil
	case queue.Done:
		return channel.HeldDone, nil
	case queue.Relayed:
		return channel.HeldRelayed, nil
	}
	return channel.HeldUnknown, nil
}
