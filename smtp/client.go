package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClientConfig configures a Client. Zero fields take their values from
// DefaultClientConfig.
type ClientConfig struct {
	HeloName string      // EHLO/LHLO name
	TLS      *tls.Config // for STARTTLS; ServerName defaults to the host of addr
	// RequireTLS fails the delivery with a temporary *DeliveryError when the
	// server does not offer STARTTLS or the handshake fails.
	RequireTLS bool
	// Opportunistic uses STARTTLS when offered without verifying the
	// certificate, and falls back to plaintext (on a new connection) if the
	// handshake fails, unless RequireTLS is also set.
	Opportunistic  bool
	LMTP           bool          // speak LMTP (RFC 2033); addr may be a unix socket path starting with "/"
	ConnectTimeout time.Duration // dial, greeting
	CommandTimeout time.Duration // idle time per read/write
	Dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	MaxIdlePerHost int           // idle sessions kept per addr; negative disables reuse
	IdleTimeout    time.Duration // idle sessions older than this are closed
	// DataTimeout bounds the wait for the reply after the final dot
	// (RFC 5321 §4.5.3.2.6).
	DataTimeout time.Duration
	Logger      *slog.Logger
}

// Outgoing is one message to send.
type Outgoing struct {
	From  string // "" sends the null reverse-path <>
	Rcpts []Rcpt
	// Header, when set, is sent in front of Body (header fields the node
	// keeps apart from the stored message; CRLF ended), so the two need
	// not be joined into one buffer.
	Header   []byte
	Body     []byte // CRLF (or LF) lines; dot-stuffing is done by Send
	Ret      string // DSN RET, passed only when the server advertises DSN
	EnvID    string // DSN ENVID, same
	SMTPUTF8 bool
	EightBit bool
}

// Client delivers messages, keeping idle sessions per address for reuse.
// It is safe for concurrent use; concurrent Sends to one address use
// separate sessions.
type Client struct {
	cfg ClientConfig
	log *slog.Logger

	mu     sync.Mutex
	idle   map[string][]*clientConn
	closed bool
	gen    uint64 // CloseIdle's count: a session dialled before the last one is not kept
	stop   chan struct{}
	done   chan struct{}
}

// DefaultClientConfig returns the settings a Client takes where its
// ClientConfig leaves a field zero.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{HeloName: "localhost", ConnectTimeout: 30 * time.Second, CommandTimeout: 5 * time.Minute,
		DataTimeout: 10 * time.Minute, MaxIdlePerHost: 2, IdleTimeout: 30 * time.Second}
}

// NewClient returns a Client. If idle sessions are kept it starts a janitor
// goroutine that Close stops.
func NewClient(cfg ClientConfig) *Client {
	d := DefaultClientConfig()
	if cfg.HeloName == "" {
		cfg.HeloName = d.HeloName
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = d.ConnectTimeout
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = d.CommandTimeout
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = d.DataTimeout
	}
	if cfg.MaxIdlePerHost == 0 {
		cfg.MaxIdlePerHost = d.MaxIdlePerHost
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = d.IdleTimeout
	}
	if cfg.Dial == nil {
		d := &net.Dialer{}
		cfg.Dial = d.DialContext
	}
	c := &Client{cfg: cfg, log: cfg.Logger, idle: map[string][]*clientConn{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxIdlePerHost > 0 {
		c.stop, c.done = make(chan struct{}), make(chan struct{})
		go c.janitor()
	}
	return c
}

// Close closes idle sessions and stops the janitor. Sends in flight finish
// and close their sessions instead of keeping them.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	idle := c.idle
	c.idle = map[string][]*clientConn{}
	c.mu.Unlock()
	if c.stop != nil {
		close(c.stop)
		<-c.done
	}
	for _, list := range idle {
		for _, cc := range list {
			c.quit(cc)
		}
	}
	return nil
}

// CloseIdle closes every idle session, and sessions busy now (or being
// dialled) are closed when their transaction ends instead of being kept:
// the next Send to any address dials again. A node calls it when the
// trust its sessions were verified with changes (a reload of the CAs), so
// that no message goes out on a session whose peer the new trust would
// refuse.
func (c *Client) CloseIdle() {
	c.mu.Lock()
	c.gen++
	idle := c.idle
	c.idle = map[string][]*clientConn{}
	c.mu.Unlock()
	for _, list := range idle {
		for _, cc := range list {
			c.quit(cc)
		}
	}
}

// Send delivers one message to addr (host:port).
//
// err != nil is a whole-transaction failure (connect, TLS, MAIL, DATA) and is
// a *DeliveryError: no recipient was delivered. Results may still be
// returned with it, telling which recipients the server refused at RCPT
// (those keep their own reply); every other recipient shares err (for a
// DATA reply their results carry it as well).
//
// With err == nil there is one result per recipient: the RCPT reply if
// refused there, otherwise the final DATA reply (LMTP: that recipient's own
// DATA reply; if the connection drops midway, the recipients not yet
// answered get 451 4.4.2). If every RCPT is refused, DATA is not sent.
func (c *Client) Send(ctx context.Context, addr string, m Outgoing) ([]RcptResult, error) {
	if len(m.Rcpts) == 0 {
		return nil, &DeliveryError{Op: "mail", Addr: addr, Reply: Reply{Text: "no recipients"}}
	}
	if err := ctx.Err(); err != nil {
		return nil, &DeliveryError{Op: "connect", Addr: addr, Temporary: true, Err: err}
	}
	cc, err := c.get(ctx, addr)
	if err != nil {
		return nil, err
	}
	// Cancellation closes the socket, which unblocks any read or write.
	stop := context.AfterFunc(ctx, func() { _ = cc.close() })
	results, reusable, err := c.transact(cc, m)
	if errors.Is(err, errStale) && stop() {
		// An idle session that did not answer its pipelined RSET: the
		// server dropped it while it waited. Nothing was sent beyond the
		// envelope, so the message goes again on a new session.
		c.log.Debug("smtp: dropping stale session", "peer", addr, "err", err)
		_ = cc.close()
		if cc, err = c.dial(ctx, addr); err != nil {
			return nil, err
		}
		stop = context.AfterFunc(ctx, func() { _ = cc.close() })
		results, reusable, err = c.transact(cc, m)
	}
	if !cc.has("DSN") {
		for i := range results {
			results[i].NoDSN = true
		}
	}
	if !stop() {
		// ctx ended during the transaction: the socket is closed. If the
		// transaction finished anyway its results stand.
		reusable = false
		var de *DeliveryError
		if errors.As(err, &de) && de.Code == 0 {
			de.Err = errors.Join(ctx.Err(), de.Err)
		}
	}
	if reusable {
		c.put(cc)
	} else {
		_ = cc.close()
	}
	return results, err
}

// transact runs MAIL, RCPT... and DATA on a ready session.
func (c *Client) transact(cc *clientConn, m Outgoing) (results []RcptResult, reusable bool, err error) {
	netErr := func(op string, e error) ([]RcptResult, bool, error) {
		return results, false, &DeliveryError{Op: op, Addr: cc.addr, Temporary: true, Reply: Reply{Text: e.Error()}, Err: e}
	}
	mail, err := c.mailCommand(cc, m)
	if err != nil {
		return nil, true, err
	}
	rcptCmds := make([]string, len(m.Rcpts))
	for i, r := range m.Rcpts {
		rcptCmds[i] = rcptCommand(cc, r)
	}

	// RFC 2920: with PIPELINING, MAIL and every RCPT go in one write and
	// the replies are read afterwards, behind the RSET of a reused session
	// (get leaves it to us). DATA waits for them so that it is never sent
	// when every recipient was refused.
	pipeline := cc.has("PIPELINING")
	if pipeline {
		cmds := append([]string{mail}, rcptCmds...)
		if cc.reset {
			cmds = append([]string{"RSET"}, cmds...)
		}
		err := cc.text.PrintfLine("%s", strings.Join(cmds, "\r\n"))
		if cc.reset {
			cc.reset = false
			r := Reply{}
			if err == nil {
				r, err = cc.readReply()
			}
			if err != nil || r.Code != 250 {
				text := fmt.Sprintf("RSET on a reused session: reply %d, %v", r.Code, err)
				return nil, false, &DeliveryError{Op: "rset", Addr: cc.addr, Temporary: true, Reply: Reply{Text: text}, Err: errStale}
			}
		}
		if err != nil {
			return netErr("mail", err)
		}
	}
	send := func(line string) (Reply, error) {
		if pipeline {
			return cc.readReply()
		}
		return cc.cmd("%s", line)
	}
	r, err := send(mail)
	if err != nil {
		return netErr("mail", err)
	}
	mailErr := error(nil)
	if r.Code/100 != 2 {
		mailErr = deliveryError(r, "mail", cc.addr)
		if !pipeline {
			return nil, r.Code != 421, mailErr
		}
	}
	results = make([]RcptResult, len(m.Rcpts))
	var accepted []int
	closing := r.Code == 421
	for i, line := range rcptCmds {
		rr, err := send(line)
		if err != nil {
			return netErr("rcpt", err)
		}
		results[i] = rcptResult(rr, m.Rcpts[i].Addr)
		closing = closing || rr.Code == 421
		if rr.Code/100 == 2 {
			accepted = append(accepted, i)
		}
	}
	if mailErr != nil {
		return nil, !closing, mailErr
	}
	if len(accepted) == 0 {
		return results, !closing, nil
	}

	dataFail := func(rep Reply) ([]RcptResult, bool, error) {
		for _, i := range accepted {
			results[i] = rcptResult(rep, m.Rcpts[i].Addr)
		}
		return results, rep.Code != 421, deliveryError(rep, "data", cc.addr)
	}
	r, err = cc.cmd("DATA")
	if err != nil {
		return netErr("data", err)
	}
	if r.Code != 354 {
		return dataFail(r)
	}
	if err := writeData(cc.text.W, m.Header, m.Body); err != nil {
		return netErr("data", err)
	}
	if err := cc.text.W.Flush(); err != nil {
		return netErr("data", err)
	}
	cc.io.timeout = c.cfg.DataTimeout
	defer func() { cc.io.timeout = c.cfg.CommandTimeout }()
	if !cc.lmtp {
		r, err = cc.readReply()
		if err != nil {
			res, reusable, err := netErr("data", err)
			err.(*DeliveryError).Unanswered = true
			return res, reusable, err
		}
		if r.Code/100 != 2 {
			return dataFail(r)
		}
		for _, i := range accepted {
			results[i] = rcptResult(r, m.Rcpts[i].Addr)
		}
		return results, true, nil
	}
	// RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
	// Recipients answered before a failure keep their replies (they may be
	// delivered already); the rest are retried.
	for n, i := range accepted {
		r, err = cc.readReply()
		if err != nil {
			lost := Reply{Code: 451, Enhanced: EnhancedCode{4, 4, 2}, Text: "connection lost before LMTP reply: " + err.Error()}
			for _, j := range accepted[n:] {
				results[j] = rcptResult(lost, m.Rcpts[j].Addr)
			}
			return results, false, nil
		}
		results[i] = rcptResult(r, m.Rcpts[i].Addr)
	}
	return results, true, nil
}

// mailCommand builds MAIL FROM with the parameters the server supports.
func (c *Client) mailCommand(cc *clientConn, m Outgoing) (string, error) {
	var b strings.Builder
	b.WriteString("MAIL FROM:<" + m.From + ">")
	if max, ok := cc.ext["SIZE"]; ok {
		// RFC 1870 §4: "SIZE" may carry the server's fixed maximum.
		size := len(m.Header) + len(m.Body)
		if limit, err := strconv.ParseInt(max, 10, 64); err == nil && limit > 0 && int64(size) > limit {
			return "", &DeliveryError{Op: "mail", Addr: cc.addr, Reply: Reply{Code: 552, Enhanced: EnhancedCode{5, 3, 4},
				Text: fmt.Sprintf("message size %d exceeds fixed maximum message size %d of the server", size, limit)}}
		}
		fmt.Fprintf(&b, " SIZE=%d", size)
	}
	if m.EightBit && cc.has("8BITMIME") {
		b.WriteString(" BODY=8BITMIME")
	}
	if m.SMTPUTF8 {
		if cc.has("SMTPUTF8") {
			b.WriteString(" SMTPUTF8")
		} else if !envelopeASCII(m) {
			// RFC 6531 §3.2: no downgrade is defined for UTF-8 addresses.
			return "", &DeliveryError{Op: "mail", Addr: cc.addr, Reply: Reply{Code: 553, Enhanced: EnhancedCode{5, 6, 7},
				Text: "server does not support SMTPUTF8 and the envelope has non-ASCII addresses"}}
		}
	}
	if cc.has("DSN") {
		if m.Ret != "" {
			b.WriteString(" RET=" + strings.ToUpper(m.Ret))
		}
		if m.EnvID != "" {
			b.WriteString(" ENVID=" + xtext(m.EnvID))
		}
	}
	return b.String(), nil
}

func envelopeASCII(m Outgoing) bool {
	if !isASCII(m.From) {
		return false
	}
	for _, r := range m.Rcpts {
		if !isASCII(r.Addr) {
			return false
		}
	}
	return true
}

func rcptCommand(cc *clientConn, r Rcpt) string {
	var b strings.Builder
	b.WriteString("RCPT TO:<" + r.Addr + ">")
	if !cc.has("DSN") {
		return b.String()
	}
	if len(r.Notify) > 0 {
		b.WriteString(" NOTIFY=" + strings.ToUpper(strings.Join(r.Notify, ",")))
	}
	if r.ORcpt != "" {
		typ, addr, ok := strings.Cut(r.ORcpt, ";")
		if !ok {
			typ, addr = "rfc822", r.ORcpt
		}
		if strings.EqualFold(typ, "utf-8") {
			b.WriteString(" ORCPT=utf-8;" + utf8AddrXtext(addr))
		} else {
			b.WriteString(" ORCPT=" + typ + ";" + xtext(addr))
		}
	}
	return b.String()
}

// errStale is transact's error when a reused session did not answer the
// RSET pipelined in front of the envelope; Send then tries a new session.
var errStale = errors.New("smtp: idle session went stale")

// get returns a ready session to addr: an idle one that answers RSET, or a
// new one. A server with PIPELINING gets the RSET in front of the next
// envelope instead, which saves a round trip per message (transact).
func (c *Client) get(ctx context.Context, addr string) (*clientConn, error) {
	for {
		cc := c.takeIdle(addr)
		if cc == nil {
			break
		}
		if cc.has("PIPELINING") {
			cc.reset = true
			return cc, nil
		}
		stop := context.AfterFunc(ctx, func() { _ = cc.close() })
		r, err := cc.cmd("RSET")
		alive := stop() && err == nil && r.Code == 250
		if alive {
			return cc, nil
		}
		c.log.Debug("smtp: dropping stale session", "peer", addr, "err", err, "code", r.Code)
		_ = cc.close()
	}
	return c.dial(ctx, addr)
}

func (c *Client) takeIdle(addr string) *clientConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.idle[addr]
	for len(list) > 0 {
		cc := list[len(list)-1]
		list = list[:len(list)-1]
		if time.Since(cc.since) < c.cfg.IdleTimeout {
			c.idle[addr] = list
			return cc
		}
		_ = cc.close() // expired: the server has likely dropped it already
	}
	delete(c.idle, addr)
	return nil
}

func (c *Client) put(cc *clientConn) {
	c.mu.Lock()
	if c.closed || cc.gen != c.gen || c.cfg.MaxIdlePerHost < 0 || len(c.idle[cc.addr]) >= c.cfg.MaxIdlePerHost {
		c.mu.Unlock()
		c.quit(cc)
		return
	}
	cc.since = time.Now()
	c.idle[cc.addr] = append(c.idle[cc.addr], cc)
	c.mu.Unlock()
}

// quit ends a session politely but without waiting long for the 221.
func (c *Client) quit(cc *clientConn) {
	cc.io.timeout = time.Second
	_, _ = cc.cmd("QUIT")
	_ = cc.close()
}

func (c *Client) janitor() {
	defer close(c.done)
	t := time.NewTicker(max(c.cfg.IdleTimeout/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		var expired []*clientConn
		c.mu.Lock()
		for addr, list := range c.idle {
			keep := list[:0]
			for _, cc := range list {
				if time.Since(cc.since) >= c.cfg.IdleTimeout {
					expired = append(expired, cc)
				} else {
					keep = append(keep, cc)
				}
			}
			if len(keep) == 0 {
				delete(c.idle, addr)
			} else {
				c.idle[addr] = keep
			}
		}
		c.mu.Unlock()
		for _, cc := range expired {
			c.quit(cc)
		}
	}
}

// IdleSessions reports how many idle sessions are kept for addr.
func (c *Client) IdleSessions(addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle[addr])
}
