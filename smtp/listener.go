package smtp

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"
)

// tooManyConns is written to a connection refused by the per-IP cap. RFC 5321
// §3.8 allows a server to answer the opening with 421 and close.
const tooManyConns = "421 4.7.0 Too many connections from your address\r\n"

// capListener enforces Limits.MaxConnsPerIP and remembers every connection it
// hands out so that Server.Close can cut them.
type capListener struct {
	net.Listener
	logger  *slog.Logger
	onReply func(code int) // ServerConfig.OnReply

	mu    sync.Mutex
	max   int // Server.SetLimits may change it
	perIP map[string]int
	conns map[*capConn]struct{}
}

func newCapListener(l net.Listener, max int, logger *slog.Logger) *capListener {
	return &capListener{
		Listener: l,
		max:      max,
		logger:   logger,
		perIP:    make(map[string]int),
		conns:    make(map[*capConn]struct{}),
	}
}

// setMax changes the per-address cap for connections accepted from now on;
// connections already open stay.
func (l *capListener) setMax(max int) {
	l.mu.Lock()
	l.max = max
	l.mu.Unlock()
}

func ipKey(a net.Addr) string {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case nil:
		return ""
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// Accept returns the next connection within its address's cap; connections
// over the cap are answered and closed here and never reach go-smtp.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := ipKey(c.RemoteAddr())
		l.mu.Lock()
		if max := l.max; max > 0 && l.perIP[key] >= max {
			l.mu.Unlock()
			l.logger.Warn("smtp: connection refused: too many from address", "peer", c.RemoteAddr().String(), "limit", max)
			// A fresh socket's send buffer takes these few bytes at once;
			// the deadline only guards against a pathological peer.
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte(tooManyConns))
			_ = c.Close()
			if l.onReply != nil {
				l.onReply(421)
			}
			continue
		}
		l.perIP[key]++
		cc := &capConn{Conn: c, l: l, key: key}
		l.conns[cc] = struct{}{}
		l.mu.Unlock()
		return cc, nil
	}
}

func (l *capListener) release(c *capConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c]; !ok {
		return
	}
	delete(l.conns, c)
	if l.perIP[c.key]--; l.perIP[c.key] <= 0 {
		delete(l.perIP, c.key)
	}
}

// closeAll closes every connection handed out and still open.
func (l *capListener) closeAll() {
	l.mu.Lock()
	conns := make([]*capConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// open reports the number of connections currently counted.
func (l *capListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

type capConn struct {
	net.Conn
	l    *capListener
	key  string
	once sync.Once
	err  error
}

func (c *capConn) Close() error {
	c.once.Do(func() {
		c.err = c.Conn.Close()
		c.l.release(c)
	})
	return c.err
}

// TLSConnectionState reports the TLS session of a connection below that
// terminated TLS itself (an interposer in ServerConfig.Listener), so that
// the dialogue follower above sees it.
func (c *capConn) TLSConnectionState() (tls.ConnectionState, bool) {
	if ts, ok := c.Conn.(tlsStater); ok {
		return ts.TLSConnectionState()
	}
	return tls.ConnectionState{}, false
}
