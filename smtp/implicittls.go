package smtp

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// implicitTLSListener terminates TLS on every accepted connection before the
// first SMTP byte (RFC 8314 §3.3, "submissions" on port 465): the greeting
// is sent inside TLS, and STARTTLS is not offered. It sits between the
// per-IP cap and the dialogue interposer, so the cap counts connections that
// never finish a handshake, and the interposer sees TLS through tlsStater.
type implicitTLSListener struct {
	net.Listener
	cfg     *tls.Config
	timeout time.Duration // handshake bound
}

func (l implicitTLSListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &implicitTLSConn{Conn: tls.Server(c, l.cfg), timeout: l.timeout}, nil
}

// implicitTLSConn runs the handshake on first use (in go-smtp's connection
// goroutine, not the accept loop), bounded by timeout, and reports its state
// as the STARTTLS interposer does.
type implicitTLSConn struct {
	*tls.Conn
	timeout time.Duration
	once    sync.Once
	err     error
}

func (c *implicitTLSConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		c.err = c.HandshakeContext(ctx)
	})
	return c.err
}

func (c *implicitTLSConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *implicitTLSConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// TLSConnectionState implements tlsStater.
func (c *implicitTLSConn) TLSConnectionState() (tls.ConnectionState, bool) {
	st := c.ConnectionState()
	return st, st.HandshakeComplete
}
