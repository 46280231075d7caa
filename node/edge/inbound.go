package edge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/edge/authres"
	"github.com/meshd/meshd/edge/milter"
	"github.com/meshd/meshd/header"
	"github.com/meshd/meshd/node/accept"
	"github.com/meshd/meshd/node/config"
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

// Tracker records the filters' verdicts (tracking.Log).
type Tracker interface {
	Record(ev tracking.Event)
}

// DSNs queues the DSN for recipients a filter removed (delivery.Deliverer).
type DSNs interface {
	FilterDSN(m queue.Envelope, body []byte, removed []delivery.Refusal) bool
}

// Inbound is the node's edge for mail entering the organisation: the
// milter chain (filters.milters, empty when none is configured: a reload
// may fill it) and the Authentication-Results checker (authres.*). It is
// the sinks' accept.Edge.
type Inbound struct {
	filters        *milter.Chain
	authres        atomic.Pointer[authres.Checker] // nil when off; SetAuthRes replaces it
	commandTimeout time.Duration                   // bounds a milter's answer at RCPT
	now            func() time.Time
	log            *slog.Logger
	trk            Tracker
	dsns           DSNs // nil until SetDSNs
}

// NewInbound builds the edge of cfg and registers the milters' metrics on reg.
func NewInbound(cfg config.Config, trk Tracker, reg prometheus.Registerer, now func() time.Time, log *slog.Logger) *Inbound {
	m := milter.NewMetrics()
	reg.MustRegister(m.Collectors()...)
	in := &Inbound{filters: milter.New(cfg.Filters.Milters, cfg.Node.Hostname, m),
		commandTimeout: cfg.Limits.CommandTimeout, now: now, log: log, trk: trk}
	in.authres.Store(newAuthRes(cfg))
	return in
}

// SetAuthRes replaces the Authentication-Results checker with the one of
// cfg.AuthRes (a reload): the messages whose DATA ends after it get the
// new field, or none when authres.enabled is off.
func (n *Inbound) SetAuthRes(cfg config.Config) { n.authres.Store(newAuthRes(cfg)) }

// SetDSNs gives the edge the deliverer, once it is built (before the
// listeners start).
func (n *Inbound) SetDSNs(d DSNs) { n.dsns = d }

// SetMilters replaces the milter chain's configuration (a reload): the
// transactions that start after it go through the new chain.
func (n *Inbound) SetMilters(ms []milter.Config) { n.filters.Set(ms) }

// Policy is the smtp.Policy of the listeners where mail enters the
// organisation: relay, then the milters of the rcpt phase.
func (n *Inbound) Policy(relay smtp.Policy) smtp.Policy { return filterPolicy{n, relay} }

// filterPolicy is the smtp.Policy of Inbound.Policy.
type filterPolicy struct {
	n     *Inbound
	relay smtp.Policy
}

func (p filterPolicy) CheckRcpt(s *smtp.Session, rcpt string) error {
	n := p.n
	if err := p.relay.CheckRcpt(s, rcpt); err != nil || s.MeshPeer || n.filters.Len() == 0 {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.commandTimeout)
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
func newAuthRes(cfg config.Config) *authres.Checker {
	if !cfg.AuthRes.Enabled {
		return nil
	}
	id := cfg.AuthRes.AuthServID
	if id == "" {
		id = cfg.Node.Hostname
	}
	return &authres.Checker{AuthServID: id, Lookup: authres.NewLookup(cfg.Outbound.DNSServer, 5*time.Second),
		Resolver: authres.NewResolver(cfg.Outbound.DNSServer, 5*time.Second)}
}

// Screen authenticates and filters a message from outside (accept.Edge).
func (n *Inbound) Screen(ctx context.Context, sess *smtp.Session, id string, env smtp.Envelope, body []byte) (accept.Screened, error) {
	ar := n.authres.Load() // one checker for the whole message, whatever a reload does
	if ar != nil {
		body = n.authenticate(ctx, ar, sess, body) // RFC 8601, for the filters below
	}
	if n.filters.Len() == 0 {
		return accept.Screened{Env: env, Body: body, Edited: ar != nil}, nil
	}
	f, err := n.filter(ctx, sess, id, env, body)
	f.Edited = true
	return f, err
}

// Queued queues the DSN for the recipients Screen removed (accept.Edge).
func (n *Inbound) Queued(m queue.Envelope, body []byte, removed []delivery.Refusal) {
	n.filterDSN(m, body, removed)
}

// authenticate removes the Authentication-Results fields that claim to
// be ours and, for mail from outside (not submitted by a user of ours),
// puts our own at the top.
func (n *Inbound) authenticate(ctx context.Context, ar *authres.Checker, sess *smtp.Session, body []byte) []byte {
	body = authres.Strip(body, ar.AuthServID)
	if sess.AuthUser != "" {
		return body
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl := authres.Client{Helo: sess.Helo, MailFrom: sess.From}
	if tcp, ok := sess.RemoteAddr.(*net.TCPAddr); ok {
		cl.IP = tcp.IP
	}
	return append([]byte(ar.Field(ctx, body, cl)), body...)
}

// filter asks the chain about a message; an error is the reply to send
// instead of queueing it.
func (n *Inbound) filter(ctx context.Context, sess *smtp.Session, id string, env smtp.Envelope, body []byte) (accept.Screened, error) {
	msg := milter.Message{
		ClientAddr: sess.RemoteAddr, Helo: sess.Helo, TLS: sess.TLS, AuthUser: sess.AuthUser,
		QueueID: id, From: env.From, Data: body,
	}
	for _, r := range env.Rcpts {
		msg.Rcpts = append(msg.Rcpts, r.Addr)
	}
	v := n.filters.Check(ctx, msg)
	n.trackFilter(id, env, body, v)
	out := accept.Screened{Env: env, Body: v.Data}
	switch v.Action {
	case milter.Reject, milter.TempFail:
		n.log.Info("message refused by content filter", "qid", id, "milter", v.Milter, "reply", v.Reply.String())
		return out, reply.New(v.Reply.Code, reply.Enhanced(v.Reply.Enhanced), v.Reply.Text)
	case milter.Discard:
		n.log.Info("message discarded by content filter", "qid", id, "milter", v.Milter)
		out.Discard = true
		return out, nil
	case milter.Quarantine:
		n.log.Info("message quarantined by content filter", "qid", id, "milter", v.Milter, "reason", v.Reason)
		out.Quarantine = v.Reason
		if out.Quarantine == "" {
			out.Quarantine = "quarantined by " + v.Milter
		}
	}
	out.Removed = n.removedRcpts(id, env, v)
	if len(v.Rcpts) == 0 {
		// Every recipient removed (SMFIR_DELRCPT, or refused at the
		// replayed RCPT): nothing to deliver, but the sender is told.
		n.log.Info("message not queued: content filters removed every recipient", "qid", id)
		out.Discard = true
		qenv := queue.Envelope{ID: id, From: env.From, Ret: env.Ret, EnvID: env.EnvID, ReceivedAt: n.now(),
			Source: "smtp", MessageID: strings.Trim(header.Value(body, "Message-ID"), "<> ")}
		if !n.filterDSN(qenv, body, out.Removed) {
			return out, accept.ErrQueueFull
		}
		return out, nil
	}
	out.Env.From = v.From
	out.Env.Rcpts = nil
	for _, a := range v.Rcpts {
		r := smtp.Rcpt{Addr: a}
		for _, old := range env.Rcpts {
			if strings.EqualFold(old.Addr, a) {
				r = old // keep its DSN parameters
				break
			}
		}
		out.Env.Rcpts = append(out.Env.Rcpts, r)
	}
	return out, nil
}

// removedRcpts lists the client's recipients (those of env) that the
// milters took out and did not put back, each with what refused it, and
// records them in the tracking log as bounced by the filter.
func (n *Inbound) removedRcpts(id string, env smtp.Envelope, v *milter.Verdict) []delivery.Refusal {
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
func (n *Inbound) filterDSN(m queue.Envelope, body []byte, removed []delivery.Refusal) bool {
	if len(removed) == 0 || n.dsns == nil {
		return true
	}
	if !n.dsns.FilterDSN(m, body, removed) {
		n.log.Error("dsn for recipients removed by content filter not queued", "qid", m.ID, "rcpts", len(removed))
		return false
	}
	return true
}

// trackFilter records the verdict and what each milter said.
func (n *Inbound) trackFilter(id string, env smtp.Envelope, body []byte, v *milter.Verdict) {
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
