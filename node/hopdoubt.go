package node

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/meshd/meshd/linkstate/channel"
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
// The copy ID is the same over every route (meshBody), so a copy that
// does reach the same node twice is still dropped there as a duplicate.

// doubtAskTimeout bounds one holds request.
const doubtAskTimeout = 10 * time.Second

// unansweredHop returns the doubt of a hop that failed with err after its
// content was sent in full, or nil.
func (t *transports) unansweredHop(g *group, addr string, err error) *queue.Doubt {
	var de *smtp.DeliveryError
	if g.kind != kindMesh || !errors.As(err, &de) || !de.Unanswered || g.copyID == "" {
		return nil
	}
	name, ch := t.n.memberChannel(addr)
	return &queue.Doubt{Node: name, Addr: addr, Channel: ch, CopyID: g.copyID, Since: t.n.now()}
}

// memberChannel names the mesh node whose mesh SMTP listener is addr and
// its port-691 address ("" when no record lists it).
func (n *Node) memberChannel(addr string) (name, channelAddr string) {
	if n.mesh == nil || addr == "" {
		return "", ""
	}
	for _, r := range n.mesh.LSDB().Snapshot().Records() {
		for _, m := range r.Members {
			if m.SMTP == addr {
				return m.Name, m.LinkState
			}
		}
	}
	return "", ""
}

// channelOf is the port-691 address to ask about d: the node's as the
// LSDB lists it now (it may have moved), else the one recorded.
func (n *Node) channelOf(d *queue.Doubt) string {
	if n.mesh != nil && d.Node != "" {
		for _, r := range n.mesh.LSDB().Snapshot().Records() {
			for _, m := range r.Members {
				if m.Name == d.Node && m.LinkState != "" {
					return m.LinkState
				}
			}
		}
	}
	return d.Channel
}

// askHolds asks the node of d whether it holds d's copy.
func (n *Node) askHolds(ctx context.Context, d *queue.Doubt) (channel.Held, error) {
	addr := n.channelOf(d)
	if addr == "" {
		return 0, errors.New("no port-691 address known for " + d.Addr)
	}
	ctx, cancel := context.WithTimeout(ctx, doubtAskTimeout)
	defer cancel()
	ans, err := channel.Holds(ctx, n.trackDial, n.trackTLS, addr, n.cfg.Node.Name, []string{d.CopyID})
	if err != nil {
		return 0, err
	}
	return ans[0], nil
}

// answerHolds serves the holds requests of the port-691 listener from the
// queue's committed state. A queue error answers nothing (the sender's
// doubt stays) rather than "unknown", which would send the copy again.
func (n *Node) answerHolds(_ context.Context, ids []string) []channel.Held {
	out := make([]channel.Held, len(ids))
	for i, id := range ids {
		h, err := n.q.Holds(id)
		if err != nil {
			n.log.Warn("holds request: queue", "copy", id, "err", err)
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

// resolveDoubts settles the due recipients of m whose hop is in doubt,
// before m is routed: each in-doubt node is asked once. Recipients it
// holds are recorded done; those it does not, and those past
// mesh.in_doubt_timeout, have their doubt cleared (in m too) and are routed
// as usual; the rest wait for the next retry, still in doubt.
func (d *deliverer) resolveDoubts(ctx context.Context, log *slog.Logger, m *queue.Message, now time.Time) {
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
		held, err := d.n.askHolds(ctx, doubt)
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
		case err == nil && held != channel.HeldUnknown:
			d.n.metrics.mesh.inDoubt.WithLabelValues("held").Inc()
			log.Info("hop in doubt resolved: the node holds the copy", "peer", peer, "copy", doubt.CopyID, "answer", held, "rcpts", len(idx))
			rep := *reply.New(250, reply.Enhanced{2, 0, 0}, "in doubt hop resolved: "+peer+" holds copy "+doubt.CopyID+" ("+held.String()+")")
			for _, i := range idx {
				results = append(results, queue.Result{Addr: m.Recipients[i].Addr, Outcome: queue.Delivered, Reply: rep, HandedOn: true})
				m.Recipients[i].State = queue.Delivered
			}
			g := &group{key: "mesh:" + doubt.Addr, kind: kindMesh, copyID: doubt.CopyID}
			d.n.trackAttempt(m, g, results, doubt.Addr)
		case err == nil:
			d.n.metrics.mesh.inDoubt.WithLabelValues("unknown").Inc()
			log.Info("hop in doubt resolved: the node never took the copy; sending it along the current routes", "peer", peer, "copy", doubt.CopyID, "rcpts", len(idx))
			reroute(peer + " does not hold copy " + doubt.CopyID + "; routed again")
		case now.Sub(doubt.Since) >= d.cfg.Mesh.InDoubtTimeout:
			d.n.metrics.mesh.inDoubt.WithLabelValues("timeout").Inc()
			log.Warn("hop in doubt unanswered past mesh.in_doubt_timeout; sending the copy elsewhere, a possible duplicate",
				"peer", peer, "copy", doubt.CopyID, "since", doubt.Since, "rcpts", len(idx), "err", err)
			reroute("no answer from " + peer + " about copy " + doubt.CopyID + " since " + doubt.Since.UTC().Format(time.RFC3339) + "; routed again")
		default:
			d.n.metrics.mesh.inDoubt.WithLabelValues("unanswered").Inc()
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
			d.forget(m.ID)
		case err != nil:
			log.Error("queue: record hop in doubt", "err", err)
		case !hasPending(after):
			d.forget(m.ID)
		}
	}
}
