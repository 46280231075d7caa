package node

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/meshd/meshd/edge/authres"
	"github.com/meshd/meshd/edge/milter"
	"github.com/meshd/meshd/header"
	"github.com/meshd/meshd/node/delivery"
	"github.com/meshd/meshd/node/tracking"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
	"github.com/meshd/meshd/smtp/reply"
)

// Content filters (filters.milters) see mail where it enters the
// organisation: on the public SMTP and submission listeners, from anyone
// but an authenticated mesh peer, once per message, after DATA and
// before the 250 (edge/milter replays the transaction to each milter).
// Milters with the rcpt phase are asked about each recipient at RCPT
// time too (filterPolicy), so their refusal is the RCPT's reply; a
// recipient a milter takes out after DATA, when the client already had
// its 250 for it, gets its sender a DSN (filterDSN).

// newFilters builds the chain of filters.milters (empty when none is
// configured: a reload may fill it) and registers its metrics.
func (n *Node) newFilters() *milter.Chain {
	m := milter.NewMetrics()
	n.metrics.reg.MustRegister(m.Collectors()...)
	return milter.New(n.cfg.Filters.Milters, n.cfg.Node.Hostname, m)
}

// filterPolicy is the smtp.Policy of the listeners where mail enters the
// organisation: the relay policy, then the milters of the rcpt phase.
type filterPolicy struct{ n *Node }

func (p filterPolicy) CheckRcpt(s *smtp.Session, rcpt string) error {
	n := p.n
	if err := n.policy.CheckRcpt(s, rcpt); err != nil || s.MeshPeer || n.filters.Len() == 0 {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.live.Load().Limits.CommandTimeout)
	defer cancel()
	msg := milter.Message{ClientAddr: s.RemoteAddr, Helo: s.Helo, TLS: s.TLS, AuthUser: s.AuthUser, QueueID: s.ID, From: s.From}
	name, r := n.filters.CheckRcpt(ctx, msg, rcpt)
	if r == nil {
		return nil
	}
	n.log.Info("recipient refused by content filter", "qid", s.ID, "milter", name, "rcpt", rcpt, "reply", r.String())
	return reply.New(r.Code, reply.Enhanced(r.Enhanced), r.Text)
}

// newAuthRes builds the Authentication-Results checker (authres.enabled),
// asking outbound.dns_server (or the system's resolvers) for keys and
// policies.
func (n *Node) newAuthRes() *authres.Checker {
	if !n.cfg.AuthRes.Enabled {
		return nil
	}
	id := n.cfg.AuthRes.AuthServID
	if id == "" {
		id = n.cfg.Node.Hostname
	}
	return &authres.Checker{AuthServID: id, Lookup: authres.NewLookup(n.cfg.Outbound.DNSServer, 5*time.Second),
		Resolver: authres.NewResolver(n.cfg.Outbound.DNSServer, 5*time.Second)}
}

// authenticate removes the Authentication-Results fields that claim to
// be ours and, for mail from outside (not submitted by a user of ours),
// puts our own at the top.
func (n *Node) authenticate(ctx context.Context, sess *smtp.Session, body []byte) []byte {
	body = authres.Strip(body, n.authres.AuthServID)
	if sess.AuthUser != "" {
		return body
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl := authres.Client{Helo: sess.Helo, MailFrom: sess.From}
	if tcp, ok := sess.RemoteAddr.(*net.TCPAddr); ok {
		cl.IP = tcp.IP
	}
	return append([]byte(n.authres.Field(ctx, body, cl)), body...)
}

// filtered is what the chain left of a message.
type filtered struct {
	env        smtp.Envelope
	body       []byte
	quarantine string // non-empty: queue it held, for this reason
	discard    bool   // answer 250 and queue nothing
	// removed are the client's recipients the milters took out: the
	// sender gets a DSN for them (filterDSN) once the message is queued.
	removed []delivery.Refusal
}

// filter asks the chain about a message; an error is the reply to send
// instead of queueing it.
func (n *Node) filter(ctx context.Context, sess *smtp.Session, id string, env smtp.Envelope, body []byte) (filtered, error) {
	msg := milter.Message{
		ClientAddr: sess.RemoteAddr, Helo: sess.Helo, TLS: sess.TLS, AuthUser: sess.AuthUser,
		QueueID: id, From: env.From, Data: body,
	}
	for _, r := range env.Rcpts {
		msg.Rcpts = append(msg.Rcpts, r.Addr)
	}
	v := n.filters.Check(ctx, msg)
	n.trackFilter(id, env, body, v)
	out := filtered{env: env, body: v.Data}
	switch v.Action {
	case milter.Reject, milter.TempFail:
		n.log.Info("message refused by content filter", "qid", id, "milter", v.Milter, "reply", v.Reply.String())
		return out, reply.New(v.Reply.Code, reply.Enhanced(v.Reply.Enhanced), v.Reply.Text)
	case milter.Discard:
		n.log.Info("message discarded by content filter", "qid", id, "milter", v.Milter)
		out.discard = true
		return out, nil
	case milter.Quarantine:
		n.log.Info("message quarantined by content filter", "qid", id, "milter", v.Milter, "reason", v.Reason)
		out.quarantine = v.Reason
		if out.quarantine == "" {
			out.quarantine = "quarantined by " + v.Milter
		}
	}
	out.removed = n.removedRcpts(id, env, v)
	if len(v.Rcpts) == 0 {
		// Every recipient removed (SMFIR_DELRCPT, or refused at the
		// replayed RCPT): nothing to deliver, but the sender is told.
		n.log.Info("message not queued: content filters removed every recipient", "qid", id)
		out.discard = true
		qenv := queue.Envelope{ID: id, From: env.From, Ret: env.Ret, EnvID: env.EnvID, ReceivedAt: n.now(),
			Source: "smtp", MessageID: strings.Trim(header.Value(body, "Message-ID"), "<> ")}
		if !n.filterDSN(qenv, body, out.removed) {
			return out, errQueueFull
		}
		return out, nil
	}
	out.env.From = v.From
	out.env.Rcpts = nil
	for _, a := range v.Rcpts {
		r := smtp.Rcpt{Addr: a}
		for _, old := range env.Rcpts {
			if strings.EqualFold(old.Addr, a) {
				r = old // keep its DSN parameters
				break
			}
		}
		out.env.Rcpts = append(out.env.Rcpts, r)
	}
	return out, nil
}

// removedRcpts lists the client's recipients (those of env) that the
// milters took out and did not put back, each with what refused it, and
// records them in the tracking log as bounced by the filter.
func (n *Node) removedRcpts(id string, env smtp.Envelope, v *milter.Verdict) []delivery.Refusal {
	var out []delivery.Refusal
	for _, rm := range v.Removed {
		i := slices.IndexFunc(env.Rcpts, func(r smtp.Rcpt) bool { return strings.EqualFold(r.Addr, rm.Addr) })
		if i < 0 || slices.ContainsFunc(v.Rcpts, func(a string) bool { return strings.EqualFold(a, rm.Addr) }) ||
			slices.ContainsFunc(out, func(r delivery.Refusal) bool { return strings.EqualFold(r.Addr, rm.Addr) }) {
			continue // added by a milter, put back, or listed already
		}
		r := env.Rcpts[i]
		why := "Recipient removed by content filter " + rm.Milter
		if rm.Reply.Code != 0 {
			why = rm.Reply.String()
		}
		out = append(out, delivery.Refusal{Rcpt: queue.Rcpt{Addr: r.Addr, Notify: r.Notify, ORcpt: r.ORcpt}, Reply: why})
		n.log.Info("recipient removed by content filter after DATA: sender notified by DSN", "qid", id, "milter", rm.Milter, "rcpt", r.Addr, "reply", why)
		n.trk.Record(tracking.Event{Event: tracking.Bounced, ID: id, Rcpts: []string{r.Addr}, Kind: "filter", Dest: rm.Milter, Reply: why})
	}
	return out
}

// filterDSN queues the DSN for the recipients the filters removed from
// the message queued (or not, when none was left) as m. A DSN that cannot
// be queued is logged: it reports false.
func (n *Node) filterDSN(m queue.Envelope, body []byte, removed []delivery.Refusal) bool {
	if len(removed) == 0 || n.del == nil {
		return true
	}
	if !n.del.FilterDSN(m, body, removed) {
		n.log.Error("dsn for recipients removed by content filter not queued", "qid", m.ID, "rcpts", len(removed))
		return false
	}
	return true
}

// trackFilter records the verdict and what each milter said.
func (n *Node) trackFilter(id string, env smtp.Envelope, body []byte, v *milter.Verdict) {
	ev := tracking.Event{Event: tracking.Filtered, ID: id, MessageID: strings.Trim(header.Value(body, "Message-ID"), "<> "),
		From: v.From, Rcpts: v.Rcpts, Kind: v.Action.String(), Dest: v.Milter}
	switch v.Action {
	case milter.Reject, milter.TempFail:
		ev.Reply = v.Reply.String()
	case milter.Quarantine:
		ev.Reply = v.Reason
	}
	var steps []string
	for _, s := range v.Steps {
		d := s.Milter + "=" + s.Result
		if s.Err != "" {
			d += fmt.Sprintf(" (%s)", s.Err)
		}
		if len(s.Edits) > 0 {
			d += " [" + strings.Join(s.Edits, ", ") + "]"
		}
		steps = append(steps, d)
	}
	ev.Filter = strings.Join(steps, "; ")
	n.trk.Record(ev)
}
