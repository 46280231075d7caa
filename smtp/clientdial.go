package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
)

// dial connects, reads the greeting, says EHLO/LHLO and negotiates STARTTLS
// according to the TLS settings.
func (c *Client) dial(ctx context.Context, addr string) (*clientConn, error) {
	c.mu.Lock()
	gen := c.gen // taken before the handshake verifies the peer (CloseIdle)
	c.mu.Unlock()
	cc, err := c.connect(ctx, addr, c.wantTLS())
	if errors.Is(err, errTLSFallback) {
		c.log.Info("smtp: STARTTLS failed, retrying in plaintext", "peer", addr)
		cc, err = c.connect(ctx, addr, false)
	}
	if cc != nil {
		cc.gen = gen
	}
	return cc, err
}

// errTLSFallback asks dial to reconnect without STARTTLS (opportunistic TLS
// whose handshake failed leaves the connection unusable).
var errTLSFallback = errors.New("smtp: opportunistic STARTTLS failed")

func (c *Client) wantTLS() bool {
	return c.cfg.TLS != nil || c.cfg.Opportunistic || c.cfg.RequireTLS
}

func (c *Client) connect(ctx context.Context, addr string, tryTLS bool) (*clientConn, error) {
	fail := func(op string, err error) error {
		return &DeliveryError{Op: op, Addr: addr, Temporary: true, Reply: Reply{Text: err.Error()}, Err: err}
	}
	network := "tcp"
	if c.cfg.LMTP && strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	conn, err := c.cfg.Dial(dctx, network, addr)
	if err != nil {
		return nil, fail("connect", err)
	}
	cc := &clientConn{addr: addr, base: conn, lmtp: c.cfg.LMTP}
	ok := false
	defer func() {
		if !ok {
			_ = conn.Close()
		}
	}()
	// The dial context also bounds the greeting and the first EHLO.
	stop := context.AfterFunc(dctx, func() { _ = conn.Close() })
	defer stop()
	cc.setConn(conn, c.cfg.CommandTimeout)

	r, err := cc.readReply()
	if err != nil {
		return nil, fail("connect", err)
	}
	if r.Code != 220 {
		return nil, deliveryError(r, "connect", addr)
	}
	if r, err = cc.hello(c.cfg.HeloName); err != nil {
		return nil, fail("connect", err)
	} else if r.Code != 250 {
		return nil, deliveryError(r, "connect", addr)
	}

	// STARTTLS is bounded by its own command timeouts, not by what is
	// left of the connect timeout (a handshake with a client certificate
	// takes two more round trips on a slow WAN link).
	if !stop() && dctx.Err() != nil {
		return nil, fail("connect", dctx.Err())
	}
	if tryTLS {
		if err := c.negotiateTLS(ctx, cc, addr); err != nil {
			return nil, err
		}
	}
	ok = true
	return cc, nil
}

func (c *Client) negotiateTLS(ctx context.Context, cc *clientConn, addr string) error {
	if !cc.has("STARTTLS") {
		if c.cfg.RequireTLS {
			return &DeliveryError{Op: "starttls", Addr: addr, Temporary: true, Reply: Reply{Text: "TLS required but server does not offer STARTTLS"}}
		}
		return nil
	}
	cfg := &tls.Config{}
	if c.cfg.TLS != nil {
		cfg = c.cfg.TLS.Clone()
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	if c.cfg.Opportunistic {
		// Opportunistic TLS (RFC 7435): encryption without authentication
		// beats plaintext; MX certificates are rarely verifiable anyway.
		cfg.InsecureSkipVerify = true
	}
	r, err := cc.startTLS(ctx, cfg, c.cfg.CommandTimeout)
	if err == nil && r.Code != 220 {
		if c.cfg.RequireTLS {
			return deliveryError(r, "starttls", addr).withTemporary()
		}
		return nil // the server refused STARTTLS; the session stays usable in plaintext
	}
	if err != nil {
		if c.cfg.Opportunistic && !c.cfg.RequireTLS {
			return errTLSFallback
		}
		return &DeliveryError{Op: "starttls", Addr: addr, Temporary: true, Reply: Reply{Text: err.Error()}, Err: err}
	}
	if r, err = cc.hello(c.cfg.HeloName); err != nil {
		// With TLS 1.3 a server that rejects the handshake (e.g. wants a
		// client certificate) says so only on the first read after it.
		if c.cfg.Opportunistic && !c.cfg.RequireTLS {
			return errTLSFallback
		}
		return &DeliveryError{Op: "starttls", Addr: addr, Temporary: true, Reply: Reply{Text: err.Error()}, Err: err}
	} else if r.Code != 250 {
		return deliveryError(r, "starttls", addr)
	}
	return nil
}

// withTemporary marks a failure as retryable: a missing TLS capability is a
// matter of the peer's configuration, which may change.
func (e *DeliveryError) withTemporary() *DeliveryError {
	e.Temporary = true
	return e
}
