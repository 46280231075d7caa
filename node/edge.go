package node

import (
	"context"

	"github.com/meshd/meshd/node/accept"
	"github.com/meshd/meshd/node/delivery"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
)

// errQueueFull is the reply when not even a filter's DSN fits the queue.
var errQueueFull = accept.ErrQueueFull

// edgeHooks are the node's Authentication-Results and content filters
// (filter.go) as the sinks' accept.Edge.
type edgeHooks struct{ n *Node }

func (e edgeHooks) Screen(ctx context.Context, sess *smtp.Session, id string, env smtp.Envelope, body []byte) (accept.Screened, error) {
	n := e.n
	if n.authres != nil {
		body = n.authenticate(ctx, sess, body) // RFC 8601, for the filters below
	}
	if n.filters.Len() == 0 {
		return accept.Screened{Env: env, Body: body}, nil
	}
	f, err := n.filter(ctx, sess, id, env, body)
	return accept.Screened{Env: f.env, Body: f.body, Quarantine: f.quarantine, Discard: f.discard, Removed: f.removed}, err
}

func (e edgeHooks) Queued(m queue.Envelope, body []byte, removed []delivery.Refusal) {
	e.n.filterDSN(m, body, removed)
}
