package milter

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
// concurrent use: every Check opens its own milter connections, and Set
// may replace the milters while checks run (each check keeps the list it
// started with).
type Chain struct {
	milters  atomic.Pointer[[]*client]
	hostname string
	metrics  *Metrics
	now      func() time.Time
}

// New builds a chain of validated configs. hostname is the MTA's name
// (the j macro milters read). A nil metrics counts nothing.
func New(cfgs []Config, hostname string, metrics *Metrics) *Chain {
	c := &Chain{hostname: hostname, metrics: metrics, now: time.Now}
	c.Set(cfgs)
	return c
}

// Set replaces the chain's milters with cfgs (validated) from the next
// check on.
func (c *Chain) Set(cfgs []Config) {
	var ms []*client
	for _, cfg := range cfgs {
		network, addr, _ := ParseAddress(cfg.Address)
		ms = append(ms, &client{cfg: cfg, network: network, addr: addr})
	}
	c.milters.Store(&ms)
}

func (c *Chain) list() []*client { return *c.milters.Load() }

// Len is the number of milters in the chain.
func (c *Chain) Len() int {
	if c == nil {
		return 0
	}
	return len(c.list())
}

// CheckRcpt asks the milters whose phases include rcpt about one
// recipient while the client waits for its RCPT reply, so a refusal is
// the milter's own reply to that RCPT and the recipient never enters the
// envelope. msg carries the connection and the sender (its Rcpts and
// Data are not used). Each milter gets a session of its own up to this
// RCPT, aborted after the answer: the transaction is replayed in full
// after DATA (Check). A nil reply accepts the recipient; a milter that
// fails applies its on_failure to this RCPT (tempfail: 451).
func (c *Chain) CheckRcpt(ctx context.Context, msg Message, rcpt string) (milterName string, refusal *Reply) {
	for _, cl := range c.list() {
		if !cl.cfg.sends(PhaseRcpt) {
			continue
		}
		start := c.now()
		res, err := cl.checkRcpt(ctx, c.hostname, msg, rcpt)
		step := Step{Milter: cl.cfg.Name, Duration: c.now().Sub(start), Result: "continue"}
		if res != nil {
			step.Result = res.result
		}
		if err != nil {
			step.Result = "failed"
		}
		c.metrics.observeRcpt(cl.cfg.Name, step)
		switch {
		case err != nil && cl.cfg.OnFailure == OnFailureAccept:
			continue
		case err != nil:
			return cl.cfg.Name, &Reply{Code: 451, Enhanced: [3]int{4, 7, 1}, Text: "Content filter unavailable, try again later"}
		case res == nil || res.result == "accept" || res.result == "continue":
			continue
		case res.result == "discard":
			// Discarding a recipient at RCPT is refusing it quietly
			// (Sendmail's SMFIR_DISCARD at RCPT discards the message,
			// which the check after DATA does once it sees it again).
			continue
		}
		r := res.reply
		return cl.cfg.Name, &r
	}
	return "", nil
}

func (cl *client) checkRcpt(ctx context.Context, hostname string, msg Message, rcpt string) (*result, error) {
	ms, res, err := cl.open(ctx, hostname, msg)
	if ms == nil {
		return res, err
	}
	defer ms.close()
	res, err = ms.rcpt(rcpt)
	if err == nil {
		_ = ms.s.Abort(nil) // this transaction goes no further with this milter
	}
	return res, err
}

// Check asks every milter about msg and returns the verdict. It never
// fails: a milter that cannot answer yields its on_failure (a TempFail
// verdict, or the message goes on without it).
func (c *Chain) Check(ctx context.Context, msg Message) *Verdict {
	v := &Verdict{Action: Accept, From: msg.From, Rcpts: append([]string(nil), msg.Rcpts...), Data: msg.Data}
	m := parseMessage(msg.Data)
	for _, cl := range c.list() {
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
		step.Edits = res.apply(v, m, cl.cfg.Name)
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
		if len(v.Rcpts) == 0 {
			break // every recipient removed: no transaction is left to show the next milter
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
	refused []Removed
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

// session is one milter session opened up to MAIL: the part of the
// transaction a RCPT-time check and the full replay share.
type session struct {
	s       *gomilter.ClientSession
	macros  *gomilter.MacroBag
	leading bool // SMFIP_HDR_LEADSPC negotiated
	cancel  context.CancelFunc
	d       *dialer
}

func (ms *session) close() {
	_ = ms.s.Close()
	ms.d.stop()
	ms.cancel()
}

// open connects to the milter and sends connect, HELO and MAIL. With a
// nil error it returns either an open session (res nil) or the milter's
// answer that ended the transaction there (no session).
func (cl *client) open(ctx context.Context, hostname string, msg Message) (ms *session, res *result, err error) {
	ctx, cancel := context.WithCancel(ctx)
	d := &dialer{ctx: ctx, timeout: cl.cfg.Timeout}
	defer func() {
		if ms == nil {
			d.stop()
			cancel()
		}
	}()
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
		return nil, nil, err
	}
	fail := func(stage string, err error) (*session, *result, error) {
		_ = s.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, nil, fmt.Errorf("%s: %w", stage, err)
	}
	end := func(r *result) (*session, *result, error) {
		_ = s.Close()
		return nil, r, nil
	}
	act, err := s.Conn(clientName, family, port, host)
	if err != nil {
		return fail("connect", err)
	}
	if r := stopped(act); r != nil {
		return end(r)
	}
	if act, err = s.Helo(msg.Helo); err != nil {
		return fail("helo", err)
	}
	if r := stopped(act); r != nil {
		return end(r)
	}
	macros.Set(gomilter.MacroMailAddr, msg.From)
	if act, err = s.Mail(msg.From, ""); err != nil {
		return fail("mail", err)
	}
	if r := stopped(act); r != nil {
		return end(r)
	}
	return &session{s: s, macros: macros, leading: s.ProtocolOption(gomilter.OptHeaderLeadingSpace), cancel: cancel, d: d}, nil, nil
}

// rcpt asks an open session about one recipient (nil: go on).
func (ms *session) rcpt(rcpt string) (*result, error) {
	ms.macros.Set(gomilter.MacroRcptAddr, rcpt)
	act, err := ms.s.Rcpt(rcpt, "")
	if err != nil {
		return nil, fmt.Errorf("rcpt: %w", err)
	}
	return stopped(act), nil
}

// run replays the transaction to the milter (RFC-less: the Sendmail
// milter protocol, version 6) and returns its answer. An error means the
// milter failed: unreachable, too slow, or off-protocol.
func (cl *client) run(ctx context.Context, hostname string, msg Message, m *message) (res *result, err error) {
	ms, res, err := cl.open(ctx, hostname, msg)
	if ms == nil {
		return res, err
	}
	defer ms.close()
	s, leading := ms.s, ms.leading
	fail := func(stage string, err error) (*result, error) {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("%s: %w", stage, err)
	}
	var act *gomilter.Action
	var refused []Removed
	var last *result
	for _, rcpt := range msg.Rcpts {
		r, err := ms.rcpt(rcpt)
		if err != nil {
			return fail("rcpt", err)
		}
		switch {
		case r == nil || r.result == "accept":
		case r.result == "reject":
			// The client had its 250 for this RCPT (the transaction is
			// replayed after DATA): the recipient is dropped, the node
			// tells the sender with a DSN, and the whole message is
			// refused if none is left.
			refused, last = append(refused, Removed{Addr: rcpt, Milter: cl.cfg.Name, Reply: r.reply}), r
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
func (r *result) apply(v *Verdict, m *message, name string) []string {
	var edits []string
	for _, rm := range r.refused {
		v.Rcpts = removeAddr(v.Rcpts, rm.Addr)
		v.Removed = append(v.Removed, rm)
		edits = append(edits, "refuse_rcpt "+rm.Addr)
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
				v.Removed = append(v.Removed, Removed{Addr: a, Milter: name})
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
