package dialogue

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"
)

// startTLS runs STARTTLS for go-smtp (RFC 3207 §4).
func (c *Conn) startTLS(line []byte) error {
	switch {
	case !IsSTARTTLS(line):
		return c.Reply("501 5.5.4 Syntax: STARTTLS (no parameters allowed)")
	case c.TLSOn():
		return c.Reply("503 5.5.1 TLS already active")
	}
	c.countReply(220) // Wire.StartTLS sends "220 2.0.0 Ready to start TLS"
	tc, err := c.w.StartTLS(c.cfg.TLS, c.cfg.CommandTimeout, func(tc *tls.Conn) error {
		_ = c.raw.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
		ctx, cancel := context.WithTimeout(c.cfg.Context, c.cfg.HandshakeTimeout)
		defer cancel()
		err := tc.HandshakeContext(ctx)
		c.w.Deadlines().Restore()
		return err
	})
	var hsErr *HandshakeError
	switch {
	case errors.As(err, &hsErr):
		c.cfg.Logger.Info("smtp: TLS handshake failed", "peer", addrString(c.raw.RemoteAddr()), "err", hsErr.Err)
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		return err
	case err != nil:
		return err
	}
	// RFC 3207 §4.2: plaintext pipelined after STARTTLS is discarded with
	// the old reader, and everything learnt before TLS is forgotten:
	// go-smtp gets an RSET, whose reply is dropped, the extensions are
	// reset, and the client must send EHLO again before MAIL or AUTH.
	c.br = bufio.NewReaderSize(tc, c.cfg.LineBuffer)
	c.resetExtensions()
	c.mu.Lock()
	c.ehlo, c.needEHLO, c.swallow = false, true, true
	c.verb, c.state, c.contentSeen = "RSET", stBusy, false
	c.mu.Unlock()
	c.pending = []byte("RSET\r\n")
	return nil
}

// tlsStater is a connection below that terminated TLS itself (implicit
// TLS on a submissions listener).
type tlsStater interface {
	TLSConnectionState() (tls.ConnectionState, bool)
}

// TLSConnectionState reports the TLS session this Conn terminated, or
// else the one the connection below terminated, and false while there is
// none. (go-smtp looks for a *tls.Conn and sees none.)
func (c *Conn) TLSConnectionState() (tls.ConnectionState, bool) {
	if st, ok := c.w.TLS(); ok {
		return st, true
	}
	if ts, ok := c.raw.(tlsStater); ok {
		return ts.TLSConnectionState()
	}
	return tls.ConnectionState{}, false
}

// TLSOn reports whether the session runs over TLS.
func (c *Conn) TLSOn() bool {
	_, ok := c.TLSConnectionState()
	return ok
}

// OffersTLS reports whether this Conn runs STARTTLS (Config.TLS is set).
func (c *Conn) OffersTLS() bool { return c.cfg.TLS != nil }

// Context is Config.Context: the parent of extension work.
func (c *Conn) Context() context.Context { return c.cfg.Context }

// Logger is Config.Logger.
func (c *Conn) Logger() *slog.Logger { return c.cfg.Logger }

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
