package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshd/meshd/meshid"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp/reply"
)

// Exactly once across a resubmitted shadow (docs/shadow.md, "Exactly
// once").
//
// A shadow is resubmitted only once the copy has been out of its holder's
// hands for mesh.shadow_timeout, so every twin a resubmission makes is at
// least that old. A copy carries its age in the mesh (X-Meshd-Age, the
// sum of the time it spent queued at each hop); a copy at least half of
// mesh.shadow_timeout old, or resubmitted from a shadow, is *suspect*:
// a twin of it may exist. Every hop says so to the next, and the node of
// final delivery (Maildir, LMTP, or out of the organisation) asks the
// other members of its routing group, on their port-691 listeners, what
// they hold of the copy ID before it delivers a suspect copy:
//
//   - done there: a member delivered (or bounced) the twin: recorded
//     delivered here without delivering again;
//   - queued there (not suspect), or queued-suspect at a member whose name
//     sorts first, or no answer: wait mesh.shadow_check and ask again
//     (that member delivers first, or answers later); past
//     mesh.shadow_timeout after the copy arrived here, deliver anyway
//     (counted and logged as a possible duplicate);
//   - unknown, relayed (the node it went to answers for it), or
//     queued-suspect at a member that sorts after this node: deliver.
//
// A copy that was not suspect when it was handed on was handed on at
// least half of mesh.shadow_timeout before any twin of it could exist, so
// by the time a twin asks, it is committed at the member that took it.

// Peers reaches the other nodes of the mesh for the shadow watcher and the
// group check (the node's LSDB and port-691 client, node/shadow.go).
type Peers interface {
	// PeerAddrs is the port-691 address of every node of the LSDB by name.
	PeerAddrs() map[string]string
	// GroupAddrs is the port-691 address of every other node of this
	// node's routing group by name: those the LSDB lists now and those it
	// listed since the process started (a crashed member drops out of the
	// record for a while, and is exactly the one to ask).
	GroupAddrs() map[string]string
	// Holds asks node (at its port-691 address addr) what its queue holds
	// of each copy ID, in order; an error is no answer.
	Holds(ctx context.Context, node, addr string, ids []string) ([]queue.Holding, error)
}

// Age is how long m's copy has been in the mesh: its age when this node
// took it and the time since.
func Age(m *queue.Message, now time.Time) time.Duration {
	return m.MeshAge + max(now.Sub(m.ReceivedAt), 0)
}

// Suspect reports whether a twin of m's copy may exist: it was resubmitted
// from a shadow (here or before), or it is at least half of
// mesh.shadow_timeout old.
func Suspect(m *queue.Message, now time.Time, shadowTimeout time.Duration) bool {
	return m.Suspect || Age(m, now) >= shadowTimeout/2
}

// ageField is the X-Meshd-Age field of a copy of m sent now.
func ageField(m *queue.Message, now time.Time, shadowTimeout time.Duration) string {
	v := Age(m, now).Truncate(time.Millisecond).String()
	if Suspect(m, now, shadowTimeout) {
		v += " suspect"
	}
	return meshid.HeaderAge + ": " + v + "\r\n"
}

// ParseAge reads an X-Meshd-Age value: the copy's age and whether it is
// suspect. A value it cannot read is age 0, suspect (a twin may exist
// as far as this node knows).
func ParseAge(v string) (time.Duration, bool) {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0, false
	}
	age, err := time.ParseDuration(f[0])
	if err != nil || age < 0 || len(f) > 2 || (len(f) == 2 && f[1] != "suspect") {
		return 0, true
	}
	return age, len(f) == 2
}

// Group-check results, the "result" label of meshd_shadow_group_checks_total.
const (
	GroupCheckDeliver = "deliver"  // no member holds a twin: delivered here
	GroupCheckTwin    = "twin"     // a member delivered the twin: not delivered again
	GroupCheckWait    = "wait"     // a member holds it queued or did not answer: asked again later
	GroupCheckTimeout = "timeout"  // still unsure past mesh.shadow_timeout: delivered, a possible duplicate
	GroupCheckAlone   = "no-group" // no other member to ask
)

// finalKind reports whether a group of kind k delivers the copy for good
// (a mailbox, or a server outside the organisation).
func finalKind(k string) bool {
	return k == KindMaildir || k == KindLMTP || k == KindSmarthost || k == KindMX
}

// checkGroup runs the group check for a suspect copy about to be delivered
// for good, and reports whether the attempt is settled without delivering
// (the twin was delivered, or the copy waits).
func (d *Deliverer) checkGroup(ctx context.Context, log *slog.Logger, m *queue.Message, g *group) bool {
	now := d.now()
	if d.peers == nil || !finalKind(g.kind) || !Suspect(m, now, d.cfg.Mesh.ShadowTimeout) {
		return false
	}
	members := d.peers.GroupAddrs()
	if len(members) == 0 {
		d.metrics.GroupCheck(GroupCheckAlone)
		return false
	}
	type answer struct {
		node string
		held queue.Holding
		err  error
	}
	var mu sync.Mutex
	var answers []answer
	var wg sync.WaitGroup
	for node, addr := range members {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var a answer
			a.node = node
			held, err := d.peers.Holds(cctx, node, addr, []string{m.ID})
			switch {
			case err != nil:
				a.err = err
			case len(held) != 1:
				a.err = fmt.Errorf("%d answers for one copy", len(held))
			default:
				a.held = held[0]
			}
			mu.Lock()
			answers = append(answers, a)
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return true // shutting down: the next process asks again
	}
	slices.SortFunc(answers, func(a, b answer) int { return strings.Compare(a.node, b.node) })
	self := d.cfg.Node.Name
	var twin, waitFor string
	var waitWhy string
	for _, a := range answers {
		switch {
		case a.err != nil:
			waitFor, waitWhy = a.node, "no answer: "+a.err.Error()
		case a.held == queue.Done:
			twin = a.node
		case a.held == queue.Queued:
			waitFor, waitWhy = a.node, "queued there"
		case a.held == queue.QueuedSuspect && a.node < self:
			waitFor, waitWhy = a.node, "queued-suspect there, and it sorts first"
		}
		if twin != "" {
			break
		}
	}
	addrs := make([]string, len(g.rcpts))
	for i, r := range g.rcpts {
		addrs[i] = r.Addr
	}
	switch {
	case twin != "":
		d.metrics.GroupCheck(GroupCheckTwin)
		log.Info("suspect copy: a member of the group delivered its twin; not delivered again", "copy", m.ID, "member", twin, "rcpts", len(addrs))
		rep := *reply.New(250, reply.Enhanced{2, 0, 0}, "twin of copy "+m.ID+" already delivered by "+twin+" (docs/shadow.md)")
		results := allResults(g, queue.Delivered, rep)
		d.track.Attempted(m, g.attempt(results, "", twin))
		after, err := d.q.RecordMessage(m.ID, results)
		switch {
		case err != nil && !isGone(err):
			log.Error("queue: record twin", "err", err)
		case err != nil || !hasPending(after):
			d.Forget(m.ID)
		}
		return true
	case waitFor != "" && now.Sub(m.ReceivedAt) < d.cfg.Mesh.ShadowTimeout:
		d.metrics.GroupCheck(GroupCheckWait)
		next := now.Add(d.cfg.Mesh.ShadowCheck)
		log.Info("suspect copy: waiting for the group before delivering", "copy", m.ID, "member", waitFor, "answer", waitWhy, "next", next)
		if err := d.q.Attempt(m.ID, addrs, next); err != nil && !isGone(err) {
			log.Error("queue: persist attempt", "err", err)
		}
		return true
	case waitFor != "":
		d.metrics.GroupCheck(GroupCheckTimeout)
		log.Warn("suspect copy: the group did not settle within mesh.shadow_timeout; delivering, a possible duplicate",
			"copy", m.ID, "member", waitFor, "answer", waitWhy)
		return false
	}
	d.metrics.GroupCheck(GroupCheckDeliver)
	return false
}

// isGone reports a queue error that means the message left (or the queue
// is closing): nothing to record.
func isGone(err error) bool {
	return errors.Is(err, queue.ErrNotFound) || errors.Is(err, queue.ErrClosed)
}
