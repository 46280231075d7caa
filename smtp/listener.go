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

// listenerFull is written to a connection refused by the listener's cap.
const listenerFull = "421 4.7.0 Too many connections, try again later\r\n"

// ConnStats counts the connections of one listener, for metrics.
type ConnStats struct {
	Open      int // connections open now
	Peers     int // of them, authenticated mesh peers (counted per peer, not per IP)
	Probation int // of them, over the per-IP cap and not (yet) authenticated
	// Refused by reason: the per-IP cap, the listener's cap, the per-peer
	// cap, and probation connections that did not authenticate in time
	// or sent a command other than EHLO/STARTTLS/NOOP/RSET/QUIT.
	RefusedPerIP, RefusedListener, RefusedPerPeer, ProbationCut uint64
	// RefusedDraining counts connections refused while the server
	// refuses new sessions (Server.RefuseNew).
	RefusedDraining uint64
}

// capListener enforces the connection caps (Limits.MaxConns per listener,
// MaxConnsPerIP per client address, MaxConnsPerPeer per authenticated mesh
// peer) and remembers every connection it hands out so that Server.Close
// can cut them.
//
// On a listener with mesh peers (probation set), authenticated peers do
// not count against the public per-IP cap: a connection over that cap is
// admitted on probation, to prove with STARTTLS and a verified node
// certificate that it is a mesh peer within Limits.PeerAuthTimeout; it is
// closed if it does not (or refused at MAIL). A connection that
// authenticates gives its per-IP slot back. So a local process that fills
// the per-IP slots of 127.0.0.1 cannot keep the mesh's own nodes (on the
// same address) out, and mesh links do not flap.
type capListener struct {
	net.Listener
	logger    *slog.Logger
	onReply   func(code int) // ServerConfig.OnReply
	probation bool           // over-cap connections may prove they are mesh peers

	mu      sync.Mutex
	lim     connLimits // Server.SetLimits may change it
	perIP   map[string]int
	perPeer map[string]int
	conns   map[*capConn]struct{}
	remote  map[string]*capConn // by remote address, for the sessions above
	stats   ConnStats
}

// connLimits are the caps in force.
type connLimits struct {
	listener, perIP, perPeer int
	authTimeout              time.Duration
}

func limitsOf(l Limits) connLimits {
	return connLimits{listener: l.MaxConns, perIP: l.MaxConnsPerIP, perPeer: l.MaxConnsPerPeer, authTimeout: l.PeerAuthTimeout}
}

func newCapListener(l net.Listener, lim Limits, logger *slog.Logger) *capListener {
	return &capListener{
		Listener: l,
		lim:      limitsOf(lim),
		logger:   logger,
		perIP:    make(map[string]int),
		perPeer:  make(map[string]int),
		conns:    make(map[*capConn]struct{}),
		remote:   make(map[string]*capConn),
	}
}

// setLimits changes the caps for connections accepted from now on;
// connections already open stay.
func (l *capListener) setLimits(lim Limits) {
	l.mu.Lock()
	l.lim = limitsOf(lim)
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

// Accept returns the next connection within the caps; connections over
// them are answered and closed here and never reach go-smtp.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if cc := l.admit(c); cc != nil {
			return cc, nil
		}
	}
}

func (l *capListener) admit(c net.Conn) *capConn {
	key := ipKey(c.RemoteAddr())
	l.mu.Lock()
	lim := l.lim
	var refuse string
	probation := false
	switch {
	case lim.listener > 0 && len(l.conns) >= lim.listener:
		refuse = listenerFull
		l.stats.RefusedListener++
	case lim.perIP > 0 && l.perIP[key] >= lim.perIP && !l.probation:
		refuse = tooManyConns
		l.stats.RefusedPerIP++
	case lim.perIP > 0 && l.perIP[key] >= lim.perIP:
		probation = true
	}
	if refuse != "" {
		l.mu.Unlock()
		l.logger.Warn("smtp: connection refused: too many connections", "peer", c.RemoteAddr().String(), "reason", refuse[10:len(refuse)-2])
		// A fresh socket's send buffer takes these few bytes at once;
		// the deadline only guards against a pathological peer.
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte(refuse))
		_ = c.Close()
		if l.onReply != nil {
			l.onReply(421)
		}
		return nil
	}
	cc := &capConn{Conn: c, l: l, key: key, probation: probation}
	if probation {
		l.stats.Probation++
		cc.cut = time.AfterFunc(lim.authTimeout, func() { l.cutProbation(cc) })
	} else {
		l.perIP[key]++
	}
	l.conns[cc] = struct{}{}
	l.remote[c.RemoteAddr().String()] = cc
	l.mu.Unlock()
	return cc
}

// cutProbation closes a probation connection that has not authenticated
// in time. Nothing is written: TLS may be running on it already.
func (l *capListener) cutProbation(c *capConn) {
	l.mu.Lock()
	cut := c.probation
	if cut {
		l.stats.ProbationCut++
	}
	l.mu.Unlock()
	if cut {
		l.logger.Warn("smtp: connection over the per-IP cap did not authenticate as a mesh peer in time", "peer", c.RemoteAddr().String())
		_ = c.Close()
	}
}

// probationOf reports whether the connection from remote is on probation.
func (l *capListener) probationOf(remote net.Addr) bool {
	if remote == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.remote[remote.String()]
	return c != nil && c.probation
}

// refuseProbation counts a probation connection refused for a command
// only an authenticated peer may give it.
func (l *capListener) refuseProbation() {
	l.mu.Lock()
	l.stats.ProbationCut++
	l.mu.Unlock()
}

// authenticated moves the connection from remote, now an authenticated
// mesh peer named peer, out of the per-IP count (or off probation) and
// into peer's. It reports false when peer is over its cap: the session
// then refuses the connection.
func (l *capListener) authenticated(remote net.Addr, peer string) bool {
	if remote == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.remote[remote.String()]
	if c == nil || c.peer != "" {
		return true
	}
	if max := l.lim.perPeer; max > 0 && l.perPeer[peer] >= max {
		l.stats.RefusedPerPeer++
		return false
	}
	if c.probation {
		c.probation = false
		l.stats.Probation--
		if c.cut != nil {
			c.cut.Stop()
		}
	} else {
		l.dropIPLocked(c.key)
	}
	c.peer = peer
	l.perPeer[peer]++
	l.stats.Peers++
	return true
}

func (l *capListener) dropIPLocked(key string) {
	if l.perIP[key]--; l.perIP[key] <= 0 {
		delete(l.perIP, key)
	}
}

func (l *capListener) release(c *capConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c]; !ok {
		return
	}
	delete(l.conns, c)
	if l.remote[c.RemoteAddr().String()] == c {
		delete(l.remote, c.RemoteAddr().String())
	}
	switch {
	case c.peer != "":
		if l.perPeer[c.peer]--; l.perPeer[c.peer] <= 0 {
			delete(l.perPeer, c.peer)
		}
		l.stats.Peers--
	case c.probation:
		l.stats.Probation--
		if c.cut != nil {
			c.cut.Stop()
		}
	default:
		l.dropIPLocked(c.key)
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

// connStats returns the counters.
func (l *capListener) connStats() ConnStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.stats
	st.Open = len(l.conns)
	return st
}

type capConn struct {
	net.Conn
	l    *capListener
	key  string
	once sync.Once
	err  error

	// Guarded by l.mu.
	probation bool        // over the per-IP cap, not authenticated yet
	cut       *time.Timer // closes it when probation runs out
	peer      string      // the authenticated mesh peer, once known
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
