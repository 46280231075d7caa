package delivery

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
	"github.com/meshd/meshd/smtp/reply"
)

// Exactly once across a lost reply to a mesh hop.
//
// A hop whose copy was sent in full (the final dot written) but whose
// reply never came (connection lost, timeout, the next node killed right
// after its queue commit) may or may not have been taken there (RFC 5321
// §6.1). Sending the copy to another node would then deliver it twice, so
// the hop is *in doubt*: the recipients keep the node and the copy ID in
// their queue record (queue.Doubt, synced with the attempt's results) and
// go to no other node. Before each retry the sender asks that node, on its
// port-691 listener (a holds request, mutual TLS; the node answers from
// its queue's committed state, queue.Holds, never from its tracking log):
//
//   - queued or done there: the hop is done, recorded as handed on;
//   - unknown there: the copy never committed; it goes along the current
//     routes as any retry;
//   - no answer: asked again after the retry backoff; past
//     mesh.in_doubt_timeout the copy goes along the current routes anyway,
//     logged as a possible duplicate and counted.
//
// The copy ID is the same over every route (meshContent), so a copy that
// does reach the same node twice is still dropped there as a duplicate.

// askHolds asks the node of d what it holds of d's copy; without Doubts
// there is nobody to ask (no answer).
func (d *Deliverer) askHolds(ctx context.Context, doubt *queue.Doubt) (queue.Holding, error) {
	if d.out.doubts == nil {
		return queue.Unknown, errors.New("no port-691 client to ask " + doubt.Addr)
	}
	return d.out.doubts.Holds(ctx, *doubt)
}

// hopVia is the hop in doubt the queue records before m's copy goes to
// the mesh node at addr (queue.AttemptVia, queue.Redirect): a sender
// killed before it records the outcome asks that node after its restart
// instead of routing the copy anew. Nil when no node is known to listen
// there, since nobody could be asked: the copy is then routed again after
// a crash, as before hops were recorded.
func (t *transports) hopVia(m *queue.Message, body []byte, g *group, addr string) *queue.Doubt {
	if g.kind != KindMesh || t.doubts == nil {
		return nil
	}
	name, ch := t.doubts.Locate(addr)
	if name == "" && ch == "" {
		return nil
	}
	if g.copyID == "" {
		g.copyID = copyID(originID(m, body), g, t.copyKey)
	}
	return &queue.Doubt{Node: name, Addr: addr, Channel: ch, CopyID: g.copyID}
}

// unansweredHop returns the doubt of a hop that failed with err after its
// content was sent in full, or nil.
func (t *transports) unansweredHop(g *group, addr string, err error) *queue.Doubt {
	var de *smtp.DeliveryError
	if g.kind != KindMesh || !errors.As(err, &de) || !de.Unanswered || g.copyID == "" {
		return nil
	}
	var name, ch string
	if t.doubts != nil {
		name, ch = t.doubts.Locate(addr)
	}
	return &queue.Doubt{Node: name, Addr: addr, Channel: ch, CopyID: g.copyID, Since: t.now()}
}

// In-doubt results, the "result" label of meshd_mesh_in_doubt_total.
const (
	InDoubtRecorded   = "recorded"   // a hop fell in doubt
	InDoubtHeld       = "held"       // the node had the copy: hop done
	InDoubtUnknown    = "unknown"    // it had not: routed again
	InDoubtUnanswered = "unanswered" // asked, no answer yet
	InDoubtTimeout    = "timeout"    // no answer within mesh.in_doubt_timeout: routed again, a possible duplicate
)

// resolveDoubts settles the due recipients of m whose hop is in doubt,
// before m is routed: each in-doubt node is asked once. Recipients it
// holds are recorded done; those it does not, and those past
// mesh.in_doubt_timeout, have their doubt cleared (in m too) and are routed
// as usual; the rest wait for the next retry, still in doubt.
func (d *Deliverer) resolveDoubts(ctx context.Context, log *slog.Logger, m *queue.Message, now time.Time) {
	type hop struct{ node, addr, copyID string }
	byHop := map[hop][]int{}
	var order []hop
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.State != queue.Pending || r.Doubt == nil || r.NextAttempt.After(now) {
			continue
		}
		h := hop{r.Doubt.Node, r.Doubt.Addr, r.Doubt.CopyID}
		if byHop[h] == nil {
			order = append(order, h)
		}
		byHop[h] = append(byHop[h], i)
	}
	for _, h := range order {
		idx := byHop[h]
		doubt := m.Recipients[idx[0]].Doubt
		held, err := d.askHolds(ctx, doubt)
		if ctx.Err() != nil {
			return
		}
		var results []queue.Result
		addrs := make([]string, len(idx))
		attempts := 0
		for j, i := range idx {
			addrs[j] = m.Recipients[i].Addr
			attempts = max(attempts, m.Recipients[i].Attempts)
		}
		peer := doubt.Node
		if peer == "" {
			peer = doubt.Addr
		}
		reroute := func(why string) {
			rep := *reply.New(451, reply.Enhanced{4, 4, 0}, why)
			for _, i := range idx {
				results = append(results, queue.Result{Addr: m.Recipients[i].Addr, Outcome: queue.TempFail, Reply: rep, ClearDoubt: true})
				m.Recipients[i].Doubt = nil
			}
		}
		switch {
		case err == nil && held != queue.Unknown:
			d.metrics.InDoubt(InDoubtHeld)
			log.Info("hop in doubt resolved: the node holds the copy", "peer", peer, "copy", doubt.CopyID, "answer", held, "rcpts", len(idx))
			rep := *reply.New(250, reply.Enhanced{2, 0, 0}, "in doubt hop resolved: "+peer+" holds copy "+doubt.CopyID+" ("+held.String()+")")
			for _, i := range idx {
				results = append(results, queue.Result{Addr: m.Recipients[i].Addr, Outcome: queue.Delivered, Reply: rep, HandedOn: true})
				m.Recipients[i].State = queue.Delivered
			}
			g := &group{key: "mesh:" + doubt.Addr, kind: KindMesh, copyID: doubt.CopyID}
			d.track.Attempted(m, g.attempt(results, doubt.Addr, doubt.Node))
		case err == nil:
			d.metrics.InDoubt(InDoubtUnknown)
			log.Info("hop in doubt resolved: the node never took the copy; sending it along the current routes", "peer", peer, "copy", doubt.CopyID, "rcpts", len(idx))
			reroute(peer + " does not hold copy " + doubt.CopyID + "; routed again")
		case now.Sub(doubt.Since) >= d.cfg.Mesh.InDoubtTimeout:
			d.metrics.InDoubt(InDoubtTimeout)
			log.Warn("hop in doubt unanswered past mesh.in_doubt_timeout; sending the copy elsewhere, a possible duplicate",
				"peer", peer, "copy", doubt.CopyID, "since", doubt.Since, "rcpts", len(idx), "err", err)
			reroute("no answer from " + peer + " about copy " + doubt.CopyID + " since " + doubt.Since.UTC().Format(time.RFC3339) + "; routed again")
		default:
			d.metrics.InDoubt(InDoubtUnanswered)
			next := now.Add(d.sched.Load().backoff.Next(attempts+1, nil))
			for _, bound := range []time.Time{doubt.Since.Add(d.cfg.Mesh.InDoubtTimeout), m.ReceivedAt.Add(d.sched.Load().lifetime)} {
				if next.After(bound) {
					next = bound
				}
			}
			log.Info("hop in doubt: the node does not answer yet", "peer", peer, "copy", doubt.CopyID, "next", next, "err", err)
			if err := d.q.Attempt(m.ID, addrs, next); err != nil && !errors.Is(err, queue.ErrNotFound) && !errors.Is(err, queue.ErrClosed) {
				log.Error("queue: persist attempt", "err", err)
			}
			continue
		}
		after, err := d.q.RecordMessage(m.ID, results)
		switch {
		case errors.Is(err, queue.ErrNotFound):
			d.Forget(m.ID)
		case err != nil:
			log.Error("queue: record hop in doubt", "err", err)
		case !hasPending(after):
			d.Forget(m.ID)
		}
	}
}
