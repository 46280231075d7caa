package netem

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// conn is one end of a TCP connection made through the network. Faults are applied on the dialed
// end only (its writes carry the from -> to delay, its reads the to -> from delay), so that a
// connection between two hosts of the network is delayed once, not twice. Accepted ends are
// tracked so that Crash and Cut can reset them.
type conn struct {
	net.Conn
	n      *Network
	host   string // the host this end belongs to
	peer   string // the other host ("" when unknown / not a host)
	dialed bool
	local  netip.AddrPort
	remote netip.AddrPort
	tx, rx *counters // bytes host->peer, peer->host (dialed ends only)

	closed    chan struct{}
	closeOnce sync.Once

	readMu     sync.Mutex // serialises Read (pending data)
	pending    []byte     // data read from the socket but held by a delay or blackhole
	pendingErr error
	readyAt    time.Time

	mu       sync.Mutex
	killErr  error
	killDone bool
	rdl      time.Time
	wdl      time.Time
	dlWake   chan struct{} // closed and replaced when a deadline changes
}

func newConn(n *Network, c net.Conn, host, peer string, dialed bool) *conn {
	return &conn{
		Conn:   c,
		n:      n,
		host:   host,
		peer:   peer,
		dialed: dialed,
		local:  addrPortOf(c.LocalAddr()),
		remote: addrPortOf(c.RemoteAddr()),
		closed: make(chan struct{}),
		dlWake: make(chan struct{}),
	}
}

func (c *conn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if len(c.pending) == 0 && c.pendingErr == nil {
		if err := c.killedErr("read"); err != nil {
			return 0, err
		}
		n, err := c.Conn.Read(p)
		if n == 0 {
			return 0, c.mapErr("read", err)
		}
		if !c.dialed {
			return n, err
		}
		delay, bh := c.n.faultsOf(c.peer, c.host)
		if delay == 0 && !bh { // fast path: nothing to hold
			c.rx.bytes.Add(uint64(n))
			return n, c.mapErr("read", err)
		}
		c.pending = append(c.pending[:0], p[:n]...)
		c.pendingErr = err
		c.readyAt = time.Now().Add(delay)
	}
	if c.dialed {
		if err := c.hold(true, c.readyAt); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if c.rx != nil {
		c.rx.bytes.Add(uint64(n))
	}
	if len(c.pending) == 0 {
		err := c.pendingErr
		c.pendingErr = nil
		return n, c.mapErr("read", err)
	}
	return n, nil
}

func (c *conn) Write(p []byte) (int, error) {
	if err := c.killedErr("write"); err != nil {
		return 0, err
	}
	if c.dialed {
		if delay, bh := c.n.faultsOf(c.host, c.peer); delay > 0 || bh {
			if err := c.hold(false, time.Now().Add(delay)); err != nil {
				return 0, err
			}
		}
	}
	n, err := c.Conn.Write(p)
	if c.tx != nil {
		c.tx.bytes.Add(uint64(n))
	}
	return n, c.mapErr("write", err)
}

// hold waits until readyAt has passed and the link is not blackholed, or until the deadline of
// the direction, a kill or Close.
func (c *conn) hold(read bool, readyAt time.Time) error {
	op := "write"
	if read {
		op = "read"
	}
	for {
		c.n.mu.Lock()
		bh := c.n.streamLocked(c.host, c.peer).blackhole
		changed := c.n.changed
		c.n.mu.Unlock()

		c.mu.Lock()
		dl := c.wdl
		if read {
			dl = c.rdl
		}
		wake := c.dlWake
		kill := c.killErr
		c.mu.Unlock()
		if kill != nil {
			return c.opErr(op, kill)
		}
		select {
		case <-c.closed:
			return c.opErr(op, net.ErrClosed)
		default:
		}
		now := time.Now()
		if !bh && !now.Before(readyAt) {
			return nil
		}
		if !dl.IsZero() && !now.Before(dl) {
			return c.opErr(op, os.ErrDeadlineExceeded)
		}
		var until time.Time
		if !bh {
			until = readyAt
		}
		if !dl.IsZero() && (until.IsZero() || dl.Before(until)) {
			until = dl
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if !until.IsZero() {
			timer = time.NewTimer(until.Sub(now))
			fire = timer.C
		}
		select {
		case <-fire:
		case <-changed:
		case <-wake:
		case <-c.closed:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

func (c *conn) killedErr(op string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killErr != nil {
		return c.opErr(op, c.killErr)
	}
	return nil
}

// mapErr replaces the error of a socket closed by a fault with the fault.
func (c *conn) mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if k := c.killedErr(op); k != nil {
		return k
	}
	return err
}

func (c *conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

func (c *conn) SetDeadline(t time.Time) error {
	c.setDeadlines(t, true, true)
	return c.Conn.SetDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.setDeadlines(t, true, false)
	return c.Conn.SetReadDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.setDeadlines(t, false, true)
	return c.Conn.SetWriteDeadline(t)
}

func (c *conn) setDeadlines(t time.Time, r, w bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r {
		c.rdl = t
	}
	if w {
		c.wdl = t
	}
	close(c.dlWake)
	c.dlWake = make(chan struct{})
}

// Close closes the connection gracefully and stops tracking it.
func (c *conn) Close() error {
	c.untrack()
	err := c.Conn.Close()
	c.closeOnce.Do(func() { close(c.closed) })
	return err
}

// kill closes the connection because of a fault; abrupt resets the peer (SO_LINGER 0) instead
// of sending FIN.
func (c *conn) kill(reason error, abrupt bool) {
	c.markKilled(reason)
	c.mu.Lock()
	already := c.killDone
	c.killDone = true
	c.mu.Unlock()
	if already {
		return
	}
	if c.dialed && c.tx != nil {
		c.n.mu.Lock()
		c.n.countersLocked(c.host, c.peer).broken.Add(1)
		c.n.mu.Unlock()
	}
	c.untrack()
	if tc, ok := c.Conn.(*net.TCPConn); ok && abrupt {
		_ = tc.SetLinger(0)
	}
	_ = c.Conn.Close()
	c.closeOnce.Do(func() { close(c.closed) })
}

// markKilled records the fault a killed connection reports; the first reason wins.
func (c *conn) markKilled(reason error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killErr == nil {
		c.killErr = reason
	}
}

func (c *conn) untrack() {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	delete(c.n.conns, c)
	if c.dialed && c.n.byLocal[c.local] == c {
		delete(c.n.byLocal, c.local)
	}
}

// CloseWrite half-closes the connection when the underlying one supports it.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// faultsOf returns the delay of the direction from -> to and whether the connection between
// the two hosts is blackholed.
func (n *Network) faultsOf(from, to string) (time.Duration, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dirLocked(from, to).delay, n.streamLocked(from, to).blackhole
}

// listener is a host's TCP listener; accepted connections are tracked and attributed.
type listener struct {
	net.Listener
	n         *Network
	host      string
	addr      netip.AddrPort
	closeOnce sync.Once
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		wc := newConn(l.n, c, l.host, "", false)
		if l.n.trackAccepted(wc) {
			return wc, nil
		}
		// The host crashed between accept and tracking: the connection never existed.
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

// Close closes the listener and gives its address back.
func (l *listener) Close() error { return l.close(false) }

// closeKeepOwner closes the listener of a crashed host: the address still belongs to the host,
// so dials to it are refused as host down until it listens again.
func (l *listener) closeKeepOwner() error { return l.close(true) }

func (l *listener) close(keepOwner bool) error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		l.n.mu.Lock()
		delete(l.n.listeners, l)
		if !keepOwner && l.n.tcpOwner[l.addr] == l.host {
			delete(l.n.tcpOwner, l.addr)
		}
		l.n.mu.Unlock()
		err = l.Listener.Close()
	})
	return err
}

// trackAccepted registers an accepted end; false when its host is crashed or the network closed.
func (n *Network) trackAccepted(c *conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.crashed[c.host] {
		return false
	}
	if peer := n.acceptedPeerLocked(c); peer != "" && n.streamLocked(peer, c.host).down != nil {
		return false // the link went down while the connection waited in the accept queue
	}
	n.conns[c] = struct{}{}
	return true
}
