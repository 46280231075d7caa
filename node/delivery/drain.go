package delivery

import (
	"errors"

	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/routing"
)

// A node that drains (docs/drain.md) delivers nothing itself: its routing
// table turns every decision into a hand-off to another member of its
// routing group (package routing, drain.go), which this package sends as
// any mesh hop (copy IDs, hops in doubt). Local domains are decided here
// before the table is asked, so a draining node asks it for them too: a
// domain its group delivers (an address space of the group's record: every
// member delivers it) is handed off; one only this node's local_domains
// name stays local, since no other member is known to deliver it.

// handsOffLocal reports whether the recipients of m in the local domain
// go to another member instead of this node's mailbox.
func (t *transports) handsOffLocal(m *queue.Message, domain string) bool {
	if t.mesh == nil {
		return false
	}
	tab := t.mesh.Routes()
	if tab == nil || !tab.Draining() {
		return false
	}
	d, _ := tab.Route(m.ID, domain)
	return d.Drain != nil && d.Drain.Instead == routing.Local
}

// RetryAll makes every pending recipient of every queued message that is
// not held due now, so that a drain (or its end) re-routes all of them at
// once rather than at their next backoff.
func (d *Deliverer) RetryAll() {
	held := false
	msgs, err := d.q.List(queue.Filter{Held: &held})
	if err != nil {
		return
	}
	for _, m := range msgs {
		if err := d.q.Retry(m.ID); err != nil && !errors.Is(err, queue.ErrNotFound) && !errors.Is(err, queue.ErrClosed) {
			d.log.Warn("queue: retry for a drain", "qid", m.ID, "err", err)
		}
	}
	if len(msgs) > 0 {
		d.log.Info("drain state changed: routing every queued message again", "count", len(msgs))
	}
	d.kick()
}
