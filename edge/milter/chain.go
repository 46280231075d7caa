package milter

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/meshd/meshd/header"
)

// Message is what the chain is told about one message.
type Message struct {
	// ClientAddr is the SMTP client (the real one behind a PROXY header).
	ClientAddr net.Addr
	// LocalAddr is the listener's address the client connected to.
	LocalAddr net.Addr
	Helo      string
	TLS       bool
	AuthUser  string
	QueueID   string
	From      string
	Rcpts     []string
	// Data is the message as received (header section and body, CRLF),
	// our Received: field at its top.
	Data []byte
}

// Chain asks its milters about messages, in order. It is safe for
// concurrent use: every Check opens its own milter connections.
type Chain struct {
	milters  []*client
	hostname string
	metrics  *Metrics
	now      func() time.Time
}

// New builds a chain of validated configs. hostname is the MTA's name
// (the j macro milters read). A nil metrics counts nothing.
func New(cfgs []Config, hostname string, metrics *Metrics) *Chain {
	c := &Chain{hostname: hostname, metrics: metrics, now: time.Now}
	for _, cfg := range cfgs {
		network, addr, _ := ParseAddress(cfg.Address)
		c.milters = append(c.milters, &client{cfg: cfg, network: network, addr: addr})
	}
	return c
}

// Len is the number of milters in the chain.
func (c *Chain) Len() int {
	if c == nil {
		return 0
	}
	return len(c.milters)
}

// Check asks every milter about msg and returns the verdict. It never
// fails: a milter that cannot answer yields its on_failure (a TempFail
// verdict, or the message goes on without it).
func (c *Chain) Check(ctx context.Context, msg Message) *Verdict {
	v := &Verdict{Action: Accept, From: msg.From, Rcpts: append([]string(nil), msg.Rcpts...), Data: msg.Data}
	m := parseMessage(msg.Data)
	for _, cl := range c.milters {
		start := c.now()
		cur := msg
		cur.From, cur.Rcpts = v.From, v.Rcpts
		res, err := cl.run(ctx, c.hostname, cur, m)
		step := Step{Milter: cl.cfg.Name, Duration: c.now().Sub(start)}
		if err != nil {
			step.Result, step.Err = "failed", err.Error()
			v.Steps = append(v.Steps, step)
			c.metrics.observe(cl.cfg.Name, step)
			if cl.cfg.OnFailure == OnFailureAccept {
				continue
			}
			v.Action, v.Milter = TempFail, cl.cfg.Name
			v.Reply = Reply{Code: 451, Enhanced: [3]int{4, 7, 1}, Text: "Content filter unavailable, try again later"}
			break
		}
		step.Result = res.result
		step.Edits = res.apply(v, m)
		v.Steps = append(v.Steps, step)
		c.metrics.observe(cl.cfg.Name, step)
		if len(step.Edits) > 0 {
			v.Changed = true
		}
		switch res.result {
		case "reject", "tempfail":
			v.Action, v.Reply, v.Milter = Reject, res.reply, cl.cfg.Name
			if res.result == "tempfail" {
				v.Action = TempFail
			}
		case "discard":
			v.Action, v.Milter = Discard, cl.cfg.Name
		case "quarantine":
			v.Action, v.Milter, v.Reason = Quarantine, cl.cfg.Name, res.reason
		}
		if v.Action == Reject || v.Action == TempFail || v.Action == Discard {
			break
		}
	}
	if v.Changed {
		v.Data = m.bytes()
	}
	c.metrics.verdict(v.Action)
	return v
}

// client is one milter of the chain.
type client struct {
	cfg           Config
	network, addr string
}

// result is one milter's answer about one message.
type result struct {
	result  string // continue, accept, reject, tempfail, discard, quarantine
	reply   Reply
	reason  string
	refused []string
	mods    []gomilter.ModifyAction
	leading bool // SMFIP_HDR_LEADSPC negotiated
}

// dialer dials with the check's context and closes the connection when
// the context ends, so that a milter that stops answering cannot hold the
// SMTP client past its deadline.
type dialer struct {
	ctx     context.Context
	timeout time.Duration
	mu      sync.Mutex
	stops   []func() bool
}

func (d *dialer) Dial(network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	conn, err := nd.DialContext(d.ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.stops = append(d.stops, context.AfterFunc(d.ctx, func() { _ = conn.Close() }))
	d.mu.Unlock()
	return conn, nil
}

func (d *dialer) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.stops {
		s()
	}
}

// stopped turns an action that ends the milter's part in the message
// into its result (nil: go on).
func stopped(act *gomilter.Action) *result {
	switch act.Type {
	case gomilter.ActionContinue, gomilter.ActionSkip:
		return nil
	case gomilter.ActionAccept:
		return &result{result: "accept"}
	case gomilter.ActionDiscard:
		return &result{result: "discard"}
	case gomilter.ActionReject, gomilter.ActionTempFail, gomilter.ActionRejectWithCode:
		r := parseReply(int(act.SMTPCode), act.SMTPReply)
		if r.Code/100 == 4 {
			return &result{result: "tempfail", reply: r}
		}
		return &result{result: "reject", reply: r}
	}
	return &result{result: "tempfail", reply: Reply{Code: 451, Enhanced: [3]int{4, 7, 1}, Text: "Content filter unavailable, try again later"}}
}

// run replays the transaction to the milter (RFC-less: the Sendmail
// milter protocol, version 6) and returns its answer. An error means the
// milter failed: unreachable, too slow, or off-protocol.
func (cl *client) run(ctx context.Context, hostname string, msg Message, m *message) (res *result, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &dialer{ctx: ctx, timeout: cl.cfg.Timeout}
	defer d.stop()
	mc := gomilter.NewClient(cl.network, cl.addr,
		gomilter.WithDialer(d),
		gomilter.WithReadTimeout(cl.cfg.Timeout),
		gomilter.WithWriteTimeout(cl.cfg.Timeout),
		gomilter.WithActions(gomilter.AllClientSupportedActionMasks),
	)
	macros := gomilter.NewMacroBag()
	macros.Set(gomilter.MacroMTAFQDN, hostname)
	macros.Set(gomilter.MacroDaemonName, "meshd")
	macros.Set(gomilter.MacroQueueId, msg.QueueID)
	if msg.AuthUser != "" {
		macros.Set(gomilter.MacroAuthAuthen, msg.AuthUser)
		macros.Set(gomilter.MacroAuthType, "PLAIN")
	}
	if msg.TLS {
		macros.Set(gomilter.MacroTlsVersion, "TLSv1.3")
	}
	host, port, family := "", uint16(0), gomilter.FamilyUnknown
	if tcp, ok := msg.ClientAddr.(*net.TCPAddr); ok {
		host, port, family = tcp.IP.String(), uint16(tcp.Port), gomilter.FamilyInet
		if tcp.IP.To4() == nil {
			family = gomilter.FamilyInet6
		}
		macros.Set(gomilter.MacroClientAddr, host)
		macros.Set(gomilter.MacroClientPort, strconv.Itoa(tcp.Port))
	}
	if tcp, ok := msg.LocalAddr.(*net.TCPAddr); ok {
		macros.Set(gomilter.MacroIfAddr, tcp.IP.String())
		macros.Set(gomilter.MacroDaemonAddr, tcp.IP.String())
		macros.Set(gomilter.MacroDaemonPort, strconv.Itoa(tcp.Port))
	}
	// No reverse lookup here: the client is named by its address, as
	// Sendmail writes an unresolved one.
	clientName := "[" + host + "]"
	macros.Set(gomilter.MacroClientName, clientName)

	s, err := mc.Session(macros)
	if err != nil {
		return nil, err
	}
	defer func() { _ = s.Close() }()
	leading := s.ProtocolOption(gomilter.OptHeaderLeadingSpace)
	fail := func(stage string, err error) (*result, error) {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("%s: %w", stage, err)
	}
	act, err := s.Conn(clientName, family, port, host)
	if err != nil {
		return fail("connect", err)
	}
	if r := stopped(act); r != nil {
		return r, nil
	}
	if act, err = s.Helo(msg.Helo); err != nil {
		return fail("helo", err)
	}
	if r := stopped(act); r != nil {
		return r, nil
	}
	macros.Set(gomilter.MacroMailAddr, msg.From)
	if act, err = s.Mail(msg.From, ""); err != nil {
		return fail("mail", err)
	}
	if r := stopped(act); r != nil {
		return r, nil
	}
	var refused []string
	var last *result
	for _, rcpt := range msg.Rcpts {
		macros.Set(gomilter.MacroRcptAddr, rcpt)
		if act, err = s.Rcpt(rcpt, ""); err != nil {
			return fail("rcpt", err)
		}
		switch r := stopped(act); {
		case r == nil || r.result == "accept":
		case r.result == "reject":
			// The client had its 250 for this RCPT long ago (the
			// transaction is replayed after DATA): the recipient is
			// dropped, and the whole message refused if none is left.
			refused, last = append(refused, rcpt), r
		default: // tempfail or discard concern the whole message
			return r, nil
		}
	}
	if len(refused) == len(msg.Rcpts) && last != nil {
		return last, nil
	}
	if act, err = s.DataStart(); err != nil {
		return fail("data", err)
	}
	if r := stopped(act); r != nil {
		r.refused = refused
		return r, nil
	}
	if cl.cfg.sends(PhaseHeader) {
		for _, f := range m.fields {
			if act, err = s.HeaderField(f.name, f.value(leading), nil); err != nil {
				return fail("header", err)
			}
			if r := stopped(act); r != nil {
				r.refused = refused
				return r, nil
			}
			if s.Skip() {
				break
			}
		}
	}
	if act, err = s.HeaderEnd(); err != nil {
		return fail("end of header", err)
	}
	if r := stopped(act); r != nil {
		r.refused = refused
		return r, nil
	}
	body := m.body
	if !cl.cfg.sends(PhaseBody) {
		body = nil
	}
	// One chunk at least: the protocol has no end of message without a
	// body event, so an empty body is sent as one empty chunk.
	for first := true; first || len(body) > 0; first = false {
		chunk := body[:min(len(body), int(gomilter.DataSize64K))]
		body = body[len(chunk):]
		if act, err = s.BodyChunk(chunk); err != nil {
			return fail("body", err)
		}
		if r := stopped(act); r != nil {
			r.refused = refused
			return r, nil
		}
		if s.Skip() {
			break
		}
	}
	mods, act, err := s.End()
	if err != nil {
		return fail("end of message", err)
	}
	r := stopped(act)
	if r == nil {
		r = &result{result: "continue"}
	}
	r.refused, r.leading = refused, leading
	if r.result == "continue" || r.result == "accept" || r.result == "discard" {
		r.mods = mods
	}
	for _, mod := range r.mods {
		if mod.Type == gomilter.ActionQuarantine && r.result != "discard" {
			r.result, r.reason = "quarantine", strings.TrimSpace(sanitize(mod.Reason))
		}
	}
	return r, nil
}

// apply makes the milter's changes to the verdict's envelope and to m,
// and returns them for the log ("add_header X-Spam", ...).
func (r *result) apply(v *Verdict, m *message) []string {
	var edits []string
	for _, rcpt := range r.refused {
		v.Rcpts = removeAddr(v.Rcpts, rcpt)
		v.Refused = append(v.Refused, rcpt)
		edits = append(edits, "refuse_rcpt "+rcpt)
	}
	var body []byte
	replaced := false
	for _, mod := range r.mods {
		switch mod.Type {
		case gomilter.ActionAddHeader, gomilter.ActionInsertHeader, gomilter.ActionChangeHeader:
			if !validFieldName(mod.HeaderName) {
				edits = append(edits, "ignored_bad_header_name")
				continue
			}
			switch mod.Type {
			case gomilter.ActionAddHeader:
				m.addField(mod.HeaderName, mod.HeaderValue, r.leading)
				edits = append(edits, "add_header "+mod.HeaderName)
			case gomilter.ActionInsertHeader:
				m.insertField(int(mod.HeaderIndex), mod.HeaderName, mod.HeaderValue, r.leading)
				edits = append(edits, "insert_header "+mod.HeaderName)
			default:
				m.changeField(int(mod.HeaderIndex), mod.HeaderName, mod.HeaderValue, r.leading)
				if strings.TrimSpace(mod.HeaderValue) == "" {
					edits = append(edits, "delete_header "+mod.HeaderName)
				} else {
					edits = append(edits, "change_header "+mod.HeaderName)
				}
			}
		case gomilter.ActionAddRcpt:
			if a := gomilter.RemoveAngle(mod.Rcpt); a != "" && !hasAddr(v.Rcpts, a) {
				v.Rcpts = append(v.Rcpts, a)
				edits = append(edits, "add_rcpt "+a)
			}
		case gomilter.ActionDelRcpt:
			a := gomilter.RemoveAngle(mod.Rcpt)
			if hasAddr(v.Rcpts, a) {
				v.Rcpts = removeAddr(v.Rcpts, a)
				edits = append(edits, "delete_rcpt "+a)
			}
		case gomilter.ActionChangeFrom:
			v.From = gomilter.RemoveAngle(mod.From)
			edits = append(edits, "change_from")
		case gomilter.ActionReplaceBody:
			body, replaced = append(body, mod.Body...), true
		}
	}
	if replaced {
		m.body = header.ToCRLF(body)
		m.ensureSep()
		edits = append(edits, "replace_body")
	}
	return edits
}

func hasAddr(list []string, a string) bool {
	for _, x := range list {
		if strings.EqualFold(x, a) {
			return true
		}
	}
	return false
}

func removeAddr(list []string, a string) []string {
	out := list[:0:0]
	for _, x := range list {
		if !strings.EqualFold(x, a) {
			out = append(out, x)
		}
	}
	return out
}
