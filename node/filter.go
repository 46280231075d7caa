package node

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/meshd/meshd/edge/authres"
	"github.com/meshd/meshd/edge/milter"
	"github.com/meshd/meshd/header"
	"github.com/meshd/meshd/node/tracking"
	"github.com/meshd/meshd/smtp"
	"github.com/meshd/meshd/smtp/reply"
)

// Content filters (filters.milters) see mail where it enters the
// organisation: on the public SMTP and submission listeners, from anyone
// but an authenticated mesh peer, once per message, after DATA and
// before the 250 (edge/milter replays the transaction to each milter).

// newFilters builds the chain of filters.milters and registers its
// metrics; nil when none is configured.
func (n *Node) newFilters() *milter.Chain {
	if len(n.cfg.Filters.Milters) == 0 {
		return nil
	}
	m := milter.NewMetrics()
	n.metrics.reg.MustRegister(m.Collectors()...)
	return milter.New(n.cfg.Filters.Milters, n.cfg.Node.Hostname, m)
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
	return &authres.Checker{AuthServID: id, Lookup: authres.NewLookup(n.cfg.Outbound.DNSServer, 5*time.Second)}
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
	return append([]byte(n.authres.Field(ctx, body)), body...)
}

// filtered is what the chain left of a message.
type filtered struct {
	env        smtp.Envelope
	body       []byte
	quarantine string // non-empty: queue it held, for this reason
	discard    bool   // answer 250 and queue nothing
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
	if len(v.Rcpts) == 0 {
		// Every recipient removed (SMFIR_DELRCPT): nothing to deliver.
		n.log.Info("message discarded: content filters removed every recipient", "qid", id)
		out.discard = true
		return out, nil
	}
	if len(v.Refused) > 0 {
		n.log.Warn("recipients refused by content filter and dropped", "qid", id, "rcpts", v.Refused)
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
