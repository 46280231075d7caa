package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/maildir"
	"github.com/meshd/meshd/node/mx"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
	"github.com/meshd/meshd/smtp/reply"
)

// Destination kinds, used as the "kind" metric label.
const (
	KindMaildir   = "maildir"
	KindLMTP      = "lmtp"
	KindSmarthost = "smarthost"
	KindMX        = "mx"
	KindMesh      = "mesh"    // a hop to another mesh node
	KindNoRoute   = "noroute" // no usable route now: wait for link state
)

// group is the recipients of one message that go to one destination.
type group struct {
	key        string // destination: "maildir", "lmtp:addr", "smarthost:addr", "mx:domain"
	kind       string
	domain     string // for mx
	rcpts      []queue.Recipient
	perDestCap int // 0: no per-destination cap

	// Mesh hops (KindMesh): next-hop addresses in order, the connector
	// used (Remote hops only; "" inside the routing group), whether the
	// hop leaves the routing group, and the routing decision.
	hops      []string
	connector string
	remote    bool
	smarthost string // External decisions through a smarthost connector
	why       string // KindNoRoute: the reason, for the reply
	perm      bool   // KindNoRoute: never deliverable (a removed routing group): fail now
	copyID    string // KindMesh: the ID the next hop receives the copy under (set when sent)
	// KindMesh: the host the queue names as the hop in doubt while the
	// attempt runs (queue.AttemptVia), and how to name another before
	// the copy goes to it (queue.Redirect); nil: none recorded.
	via      string
	redirect func(addr string) error
}

// transports delivers groups: Maildir, LMTP, smarthost or MX, with the
// dead-destination cache shared by all of them.
type transports struct {
	cfg      config.Config
	log      *slog.Logger
	now      func() time.Time
	local    LocalDomains
	mesh     Mesh // nil on a standalone node
	doubts   Doubts
	metrics  Metrics
	copyKey  []byte
	resolver MXResolver
	remote   *smtp.Client // smarthost and MX
	// meshClient carries hops to other mesh nodes (their mesh listeners).
	meshClient *smtp.Client
	lmtp       *smtp.Client
	// writeMaildir is maildir.Deliver; a field so tests can make it fail.
	writeMaildir func(root, rcpt string, body []byte) (string, error)

	mu   sync.Mutex
	dead map[string]time.Time // host:port -> not dialled again before
}

func newTransports(c config.Config, opts Deps) (*transports, error) {
	t := &transports{cfg: c, log: opts.Log, now: opts.Now, local: opts.Local, mesh: opts.Mesh, doubts: opts.Doubts, metrics: opts.Metrics,
		copyKey: opts.CopyKey, resolver: opts.Resolver, writeMaildir: maildir.Deliver, dead: map[string]time.Time{}}
	if t.resolver == nil {
		t.resolver = &mx.Resolver{Server: c.Outbound.DNSServer, MaxHosts: c.Outbound.MaxMXHosts}
	}
	clientTLS := opts.OutboundTLS
	if clientTLS == nil {
		// Opportunistic STARTTLS (RFC 7435): encrypt when offered, do not
		// authenticate the server; the smtp client skips verification.
		clientTLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	log := opts.Log.With("component", "outbound")
	t.remote = smtp.NewClient(smtp.ClientConfig{
		HeloName:       c.Outbound.HeloName,
		TLS:            clientTLS,
		RequireTLS:     c.Outbound.RequireTLS,
		Opportunistic:  true,
		ConnectTimeout: c.Outbound.ConnectTimeout,
		CommandTimeout: c.Outbound.CommandTimeout,
		// As many idle sessions as may be busy at once, so that a steady
		// stream to one destination reuses every session it opened.
		MaxIdlePerHost: c.Outbound.MaxPerDestination,
		Dial:           opts.Dial,
		Logger:         log,
	})
	if c.MeshEnabled() {
		// A hop verifies its target's certificate and presents ours; only
		// a lab (mesh.insecure_plaintext) skips that.
		hopTLS := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // mesh.insecure_plaintext only
		requireTLS := c.Mesh.RequireTLS
		if opts.HopTLS != nil {
			hopTLS, requireTLS = opts.HopTLS, true
		}
		t.meshClient = smtp.NewClient(smtp.ClientConfig{
			HeloName:      c.Node.Hostname,
			TLS:           hopTLS,
			RequireTLS:    requireTLS,
			Opportunistic: !requireTLS,
			// Mesh peers are our own nodes, one routing table away from an
			// alternative: give up on a silent link sooner than on the
			// internet, so the message takes the new route.
			ConnectTimeout: min(c.Outbound.ConnectTimeout, meshConnectTimeout),
			CommandTimeout: min(c.Outbound.CommandTimeout, meshCommandTimeout),
			MaxIdlePerHost: c.Mesh.MaxPerPeer,
			Dial:           opts.Dial,
			Logger:         opts.Log.With("component", "mesh-hop"), // not log: one component key per line
		})
	}
	if c.Delivery.Mode == "lmtp" {
		t.lmtp = smtp.NewClient(smtp.ClientConfig{
			HeloName:       c.Outbound.HeloName,
			LMTP:           true,
			MaxIdlePerHost: c.Outbound.MaxPerDestination,
			ConnectTimeout: c.Outbound.ConnectTimeout,
			CommandTimeout: c.Outbound.CommandTimeout,
			Dial:           opts.Dial,
			Logger:         log,
		})
	}
	return t, nil
}

func (t *transports) close() error {
	var errs []error
	if t.remote != nil {
		errs = append(errs, t.remote.Close())
	}
	if t.lmtp != nil {
		errs = append(errs, t.lmtp.Close())
	}
	if t.meshClient != nil {
		errs = append(errs, t.meshClient.Close())
	}
	return errors.Join(errs...)
}

// route groups the message's due pending recipients by destination: local
// domains to the Maildir or the LMTP server; others to the smarthost (one
// copy for all of them) or to the MX of each domain.
func (t *transports) route(m *queue.Message, now time.Time) []*group {
	byKey := map[string]*group{}
	var order []string
	for _, r := range m.Recipients {
		if r.State != queue.Pending || r.NextAttempt.After(now) || r.Doubt != nil {
			continue // a hop in doubt goes nowhere else (hopdoubt.go)
		}
		g := t.groupFor(m, r.Addr)
		if have := byKey[g.key]; have != nil {
			g = have
		} else {
			byKey[g.key] = g
			order = append(order, g.key)
		}
		g.rcpts = append(g.rcpts, r)
	}
	groups := make([]*group, len(order))
	for i, k := range order {
		groups[i] = byKey[k]
	}
	return groups
}

func (t *transports) groupFor(m *queue.Message, addr string) *group {
	domain := smtp.AddrDomain(addr)
	switch {
	case t.local.IsLocal(domain) && t.handsOffLocal(m, domain):
		return t.meshGroup(m, domain) // draining (drain.go)
	case t.local.IsLocal(domain):
		return t.localGroup()
	case t.mesh != nil:
		return t.meshGroup(m, domain)
	case t.cfg.Outbound.Smarthost != "":
		return &group{key: "smarthost:" + t.cfg.Outbound.Smarthost, kind: KindSmarthost, perDestCap: t.cfg.Outbound.MaxPerDestination}
	}
	return &group{key: "mx:" + domain, kind: KindMX, domain: domain, perDestCap: t.cfg.Outbound.MaxPerDestination}
}

func (t *transports) localGroup() *group {
	if t.cfg.Delivery.Mode == "lmtp" {
		return &group{key: "lmtp:" + t.cfg.Delivery.LMTP, kind: KindLMTP, perDestCap: t.cfg.Outbound.MaxPerDestination}
	}
	return &group{key: KindMaildir, kind: KindMaildir}
}

// deliver makes one attempt for the group and returns one result per
// recipient, plus the host that answered (for the DSN's Remote-MTA). c is
// the message's stored content (content.go), signed when it leaves the
// organisation; local copies and mesh hops are built from m and c.body.
func (t *transports) deliver(ctx context.Context, m *queue.Message, c content, g *group, inDoubt bool) ([]queue.Result, string) {
	switch g.kind {
	case KindMaildir:
		return t.deliverMaildir(m, c.body, g, inDoubt), ""
	case KindLMTP:
		return t.sendHosts(ctx, t.lmtp, []string{t.cfg.Delivery.LMTP}, m, lmtpCopy(m, c.body), g)
	case KindSmarthost:
		host := t.cfg.Outbound.Smarthost
		if g.smarthost != "" {
			host = g.smarthost
		}
		return t.sendHosts(ctx, t.remote, []string{host}, m, c, g)
	case KindMesh:
		res, remote := t.sendHosts(ctx, t.meshClient, g.hops, m, meshContent(m, c.body, g, t.cfg.Node.RoutingGroup, t.copyKey, ageField(m, t.now(), t.cfg.Mesh.ShadowTimeout)), g)
		if g.redirect != nil {
			// The hop recorded before the attempt is settled: only a
			// reply lost after the final dot keeps it in doubt.
			for i := range res {
				res[i].ClearDoubt = res[i].Doubt == nil
			}
		}
		return loopsWait(res), remote
	case KindNoRoute:
		if g.perm {
			return allResults(g, queue.PermFail, *reply.New(550, reply.Enhanced{5, 4, 4}, g.why)), ""
		}
		return allResults(g, queue.TempFail, *reply.New(451, reply.Enhanced{4, 4, 4}, g.why)), ""
	}
	hosts, err := t.resolver.Lookup(ctx, g.domain)
	switch {
	case errors.Is(err, mx.ErrNullMX):
		// RFC 7505 §3.2: 556 5.1.10 for a domain that accepts no mail.
		return allResults(g, queue.PermFail, *reply.New(556, reply.Enhanced{5, 1, 10}, "domain "+g.domain+" accepts no mail (null MX)")), ""
	case errors.Is(err, mx.ErrNoHost):
		return allResults(g, queue.PermFail, *reply.New(550, reply.Enhanced{5, 1, 2}, "no mail host for domain "+g.domain)), ""
	case err != nil:
		return allResults(g, queue.TempFail, *reply.New(451, reply.Enhanced{4, 4, 3}, "DNS lookup for "+g.domain+" failed: "+err.Error())), ""
	}
	port := strconv.Itoa(t.cfg.Outbound.MXPort)
	var addrs []string
	for i, h := range hosts {
		if i >= t.cfg.Outbound.MaxMXHosts {
			break
		}
		ips := h.Addrs
		if len(ips) == 0 {
			ips = []string{strings.TrimSuffix(h.Name, ".")}
		}
		for _, ip := range ips {
			addrs = append(addrs, net.JoinHostPort(ip, port))
		}
	}
	if len(addrs) == 0 {
		return allResults(g, queue.PermFail, *reply.New(550, reply.Enhanced{5, 1, 2}, "no mail host for domain "+g.domain)), ""
	}
	return t.sendHosts(ctx, t.remote, addrs, m, c, g)
}

func allResults(g *group, o queue.Outcome, rep reply.Reply) []queue.Result {
	out := make([]queue.Result, len(g.rcpts))
	for i, r := range g.rcpts {
		out[i] = queue.Result{Addr: r.Addr, Outcome: o, Reply: rep}
	}
	return out
}

// deliverMaildir writes one copy per recipient with Return-Path and
// Delivered-To added (RFC 5321 §4.4: the final delivery adds Return-Path).
// inDoubt says an earlier process attempted the message and may have
// written copies without recording them (see indoubt.go).
func (t *transports) deliverMaildir(m *queue.Message, body []byte, g *group, inDoubt bool) []queue.Result {
	out := make([]queue.Result, 0, len(g.rcpts))
	// The hop's X-Meshd-ID is this message's queue ID, which copyHeader
	// writes again: keep one.
	c := localCopy(m, body)
	for _, r := range g.rcpts {
		hdr := copyHeader(m.From, r.Addr, m.ID)
		if inDoubt && r.Attempts > 0 {
			if path, ok := findCopy(t.cfg.Delivery.Maildir, r.Addr, m.ID, len(hdr)+len(c.head)+len(c.body)); ok {
				t.log.Info("copy already in mailbox from before restart", "qid", m.ID, "rcpt", r.Addr, "path", path)
				out = append(out, queue.Result{Addr: r.Addr, Outcome: queue.Delivered, Reply: *reply.New(250, reply.Enhanced{2, 0, 0}, "delivered to "+path)})
				continue
			}
		}
		msg := make([]byte, 0, len(hdr)+len(c.head)+len(c.body))
		msg = append(append(append(msg, hdr...), c.head...), c.body...)
		path, err := t.writeMaildir(t.cfg.Delivery.Maildir, r.Addr, msg)
		if errors.Is(err, maildir.ErrInvalidAddress) {
			out = append(out, queue.Result{Addr: r.Addr, Outcome: queue.PermFail, Reply: *reply.New(550, reply.Enhanced{5, 1, 3}, "bad mailbox address: "+err.Error())})
			continue
		}
		if err != nil {
			t.log.Error("maildir delivery failed", "qid", m.ID, "rcpt", r.Addr, "err", err)
			out = append(out, queue.Result{Addr: r.Addr, Outcome: queue.TempFail, Reply: *reply.New(451, reply.Enhanced{4, 3, 0}, "mailbox write failed: "+err.Error())})
			continue
		}
		out = append(out, queue.Result{Addr: r.Addr, Outcome: queue.Delivered, Reply: *reply.New(250, reply.Enhanced{2, 0, 0}, "delivered to "+path)})
	}
	return out
}

// sendHosts tries the hosts in order (RFC 5321 §5.1: on a temporary
// failure or no connection, the next MX is tried) and stops at the first
// that takes the transaction. Hosts that recently could not be reached are
// skipped without dialling.
func (t *transports) sendHosts(ctx context.Context, c *smtp.Client, addrs []string, m *queue.Message, msg content, g *group) ([]queue.Result, string) {
	out := smtp.Outgoing{
		From: m.From, Header: msg.head, Body: msg.body, Ret: m.Ret, EnvID: m.EnvID, SMTPUTF8: m.SMTPUTF8, EightBit: m.EightBit,
	}
	for _, r := range g.rcpts {
		out.Rcpts = append(out.Rcpts, smtp.Rcpt{Addr: r.Addr, Notify: r.Notify, ORcpt: r.ORcpt})
	}
	var lastReply reply.Reply
	tried := 0
	for _, addr := range addrs {
		if until, dead := t.isDead(addr); dead {
			t.metrics.DeadSkip()
			if lastReply.Code == 0 {
				lastReply = *reply.New(451, reply.Enhanced{4, 4, 1}, addr+" unreachable recently; not retried before "+until.UTC().Format(time.RFC3339))
			}
			continue
		}
		if g.redirect != nil && addr != g.via {
			// The hop before refused or was not reached: the queue names
			// this one before it can take the copy (hopdoubt.go).
			if err := g.redirect(addr); err != nil {
				lastReply = *reply.New(451, reply.Enhanced{4, 3, 0}, "cannot record the hop to "+addr+": "+err.Error())
				break
			}
			g.via = addr
		}
		tried++
		res, err := c.Send(ctx, addr, out)
		t.reportHop(g, addr, err)
		if doubt := t.unansweredHop(g, addr, err); doubt != nil {
			// The next node may hold the copy: no other host gets it
			// until that node is asked (hopdoubt.go).
			t.metrics.InDoubt(InDoubtRecorded)
			t.log.Warn("mesh hop in doubt: copy sent in full, no reply", "qid", m.ID, "peer", addr, "node", doubt.Node, "copy", g.copyID, "err", err)
			results := allResults(g, queue.TempFail, *reply.New(451, reply.Enhanced{4, 4, 2}, "no reply from "+addr+" after the final dot; in doubt until it is asked: "+err.Error()))
			for i := range results {
				results[i].Doubt = doubt
			}
			return results, ""
		}
		if err != nil {
			var de *smtp.DeliveryError
			if !errors.As(err, &de) {
				lastReply = *reply.New(451, reply.Enhanced{4, 4, 0}, err.Error())
				continue
			}
			if de.Unanswered && g.kind != KindMesh {
				// Outside the mesh nobody can be asked: the retry may
				// deliver a second copy (RFC 5321 §6.1 prefers that to a
				// loss). Said in the log, the tracking log and a metric.
				t.metrics.ReplyLost(g.kind)
				t.log.Warn("reply lost after the final dot; the message may be delivered more than once", "qid", m.ID, "peer", addr, "kind", g.kind, "err", err)
				return replyLost(allResults(g, queue.TempFail, *reply.New(451, reply.Enhanced{4, 4, 2},
					"no reply from "+addr+" after the final dot; it may hold the message: "+err.Error()))), ""
			}
			if de.Op == "connect" && ctx.Err() == nil {
				t.markDead(addr)
			}
			if de.Temporary || de.Code == 0 {
				lastReply = tempReply(de)
				continue
			}
			return allResults(g, queue.PermFail, de.Reply), addr
		}
		return mapResults(g, res), addr
	}
	if tried == 0 && lastReply.Code == 0 {
		lastReply = *reply.New(451, reply.Enhanced{4, 4, 1}, "no reachable host")
	}
	return allResults(g, queue.TempFail, lastReply), ""
}

// replyLost marks results whose transaction was sent in full but not answered.
func replyLost(rs []queue.Result) []queue.Result {
	for i := range rs {
		rs[i].ReplyLost = true
	}
	return rs
}

// tempReply is the reply of a temporary transaction failure: the server's,
// or 451 4.4.1 naming what failed.
func tempReply(de *smtp.DeliveryError) reply.Reply {
	if de.Code != 0 {
		return de.Reply
	}
	return *reply.New(451, reply.Enhanced{4, 4, 1}, de.Addr+": "+de.Op+": "+de.Text)
}

// mapResults turns RCPT/DATA replies into queue results (2xx delivered,
// 4xx temporary, 5xx permanent); a recipient without a reply is temporary.
func mapResults(g *group, res []smtp.RcptResult) []queue.Result {
	out := make([]queue.Result, 0, len(g.rcpts))
	for _, r := range g.rcpts {
		i := slices.IndexFunc(res, func(x smtp.RcptResult) bool { return strings.EqualFold(x.Addr, r.Addr) })
		if i < 0 {
			out = append(out, queue.Result{Addr: r.Addr, Outcome: queue.TempFail, Reply: *reply.New(451, reply.Enhanced{4, 4, 0}, "no reply for recipient")})
			continue
		}
		x := res[i]
		o := queue.TempFail
		switch x.Code / 100 {
		case 2:
			o = queue.Delivered
		case 5:
			o = queue.PermFail
		}
		out = append(out, queue.Result{Addr: r.Addr, Outcome: o, Reply: x.Reply, Relayed: o == queue.Delivered && x.NoDSN})
	}
	return out
}

func (t *transports) isDead(addr string) (time.Time, bool) {
	if t.cfg.Outbound.DeadTime <= 0 {
		return time.Time{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	until, ok := t.dead[addr]
	if !ok {
		return time.Time{}, false
	}
	if !t.now().Before(until) {
		delete(t.dead, addr)
		return time.Time{}, false
	}
	return until, true
}

func (t *transports) markDead(addr string) {
	if t.cfg.Outbound.DeadTime <= 0 {
		return
	}
	// Never longer than the first retry delay: a scheduled retry dials again.
	d := min(t.cfg.Outbound.DeadTime, t.cfg.Queue.Retry.Initial)
	t.mu.Lock()
	t.dead[addr] = t.now().Add(d)
	t.mu.Unlock()
	t.log.Warn("destination unreachable; skipping it for a while", "peer", addr, "for", d)
}

// clearDead forgets every unreachable destination.
func (t *transports) clearDead() {
	t.mu.Lock()
	clear(t.dead)
	t.mu.Unlock()
}

// memberAt names the mesh node listening on addr ("" when none, or standalone).
func (t *transports) memberAt(addr string) string {
	if t.mesh == nil || addr == "" {
		return ""
	}
	return t.mesh.MemberAt(addr)
}

// attempt is the tracking record of one attempt of g.
func (g *group) attempt(results []queue.Result, remote, nextHop string) Attempt {
	a := Attempt{Kind: g.kind, Dest: g.key, Connector: g.connector, Remote: remote, Results: results}
	if g.kind == KindMesh {
		a.CopyID, a.NextHop = g.copyID, nextHop
	}
	return a
}

// Timeouts of hops to other mesh nodes.
const (
	meshConnectTimeout = 5 * time.Second
	meshCommandTimeout = 30 * time.Second
)
