package delivery

import (
	"cmp"
	"slices"
	"time"

	"github.com/meshd/meshd/queue"
)

// HopQueue is the part of the queue waiting for one next hop.
type HopQueue struct {
	Hop      string        // HopName of the destination, or "held"
	Messages int           // messages with a pending recipient for it
	Oldest   time.Duration // age of the oldest of them
}

// maxQueueScan bounds how many queued messages one per-next-hop summary
// reads (the status page and every metrics scrape make one).
const maxQueueScan = 10000

// NextHops groups the pending recipients of queued messages by the next
// hop the current routing would send them to (the status page, metrics).
func (d *Deliverer) NextHops() []HopQueue {
	if d == nil {
		return nil
	}
	msgs, err := d.q.List(queue.Filter{Limit: maxQueueScan})
	if err != nil {
		return nil
	}
	now := d.now()
	by := map[string]*HopQueue{}
	for _, m := range msgs {
		counted := map[string]bool{}
		for _, r := range m.Recipients {
			if r.State != queue.Pending {
				continue
			}
			hop := d.HopName(m, r.Addr)
			if m.Held {
				hop = "held"
			}
			if counted[hop] {
				continue
			}
			counted[hop] = true
			q := by[hop]
			if q == nil {
				q = &HopQueue{Hop: hop}
				by[hop] = q
			}
			q.Messages++
			q.Oldest = max(q.Oldest, now.Sub(m.ReceivedAt))
		}
	}
	out := make([]HopQueue, 0, len(by))
	for _, q := range by {
		out = append(out, *q)
	}
	slices.SortFunc(out, func(a, b HopQueue) int { return cmp.Compare(a.Hop, b.Hop) })
	return out
}
