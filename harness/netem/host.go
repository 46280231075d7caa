package netem

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Host is the view of the network from one node: what it listens on and dials through.
type Host struct {
	n    *Network
	name string
}

// Name returns the host's name.
func (h *Host) Name() string { return h.name }

// Network returns the network the host belongs to.
func (h *Host) Network() *Network { return h.n }

// Listen opens a real TCP listener for the host and registers its address as the host's, so
// that dials to it are judged against the link to this host. network is "tcp", "tcp4" or
// "tcp6"; an empty or unspecified IP in addr binds 127.0.0.1 (traffic stays on loopback). The
// listener's connections are reset when the host crashes; Listen fails while it is crashed.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("netem: listen %s %s: unsupported network", network, addr)
	}
	ap, err := parseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("netem: listen %s: %w", addr, err)
	}
	n := h.n
	n.mu.Lock()
	down := n.closed || n.crashed[h.name]
	n.mu.Unlock()
	if down {
		return nil, fmt.Errorf("netem: listen %s on %s: %w", addr, h.name, h.downErr())
	}
	ln, err := net.Listen(network, ap.String())
	if err != nil {
		return nil, fmt.Errorf("netem: listen %s on %s: %w", addr, h.name, err)
	}
	l := &listener{Listener: ln, n: n, host: h.name, addr: addrPortOf(ln.Addr())}
	n.mu.Lock()
	if n.closed || n.crashed[h.name] {
		n.mu.Unlock()
		_ = ln.Close()
		return nil, fmt.Errorf("netem: listen %s on %s: %w", addr, h.name, h.downErr())
	}
	n.listeners[l] = struct{}{}
	n.tcpOwner[l.addr] = h.name
	n.mu.Unlock()
	return l, nil
}

func (h *Host) downErr() error {
	if h.n.Crashed(h.name) {
		return ErrHostDown
	}
	return ErrClosed
}

// Dial is DialContext.
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return h.DialContext(ctx, network, addr)
}

// DialContext connects from the host to addr over real TCP, after judging the link to the host
// that owns addr (an address owned by no host is judged only against this host's crash state).
// It has the signature of net.Dialer.DialContext, so it plugs into Dial fields of client
// configurations. A cut, a crashed end or a Drop makes it fail at once with a *net.OpError
// around a *FaultError (errors.Is ECONNREFUSED); a blackholed link makes it wait for ctx; a
// delayed link makes it wait the delay first. addr must be an IP literal or "localhost" with a
// port: names are not resolved (all traffic is on loopback).
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("netem: dial %s %s: unsupported network", network, addr)
	}
	n := h.n
	ap, err := parseAddr(addr)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	raddr := net.TCPAddrFromAddrPort(ap)
	opErr := func(err error) error { return &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: err} }

	n.mu.Lock()
	owner := n.tcpOwner[ap]
	n.mu.Unlock()

	// Judge the link; a blackhole waits for a change of the fault table or the end of ctx.
	var v verdict
	for {
		n.mu.Lock()
		v = n.streamLocked(h.name, owner)
		if v.down == nil && !v.blackhole && v.drop > 0 && n.rng.Float64() < v.drop {
			v.down = ErrDropped
		}
		if v.down != nil {
			n.countersLocked(h.name, owner).refused.Add(1)
		}
		changed := n.changed
		n.mu.Unlock()
		if v.down != nil {
			return nil, opErr(&FaultError{From: h.name, To: owner, Reason: v.down, Errno: syscall.ECONNREFUSED})
		}
		if !v.blackhole {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, opErr(ctxErr(ctx))
		}
	}
	if v.delay > 0 {
		t := time.NewTimer(v.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, opErr(ctxErr(ctx))
		}
	}

	var d net.Dialer
	c, err := d.DialContext(ctx, network, ap.String())
	if err != nil {
		return nil, err
	}
	wc := newConn(n, c, h.name, owner, true)

	// The fault table may have changed while we connected.
	n.mu.Lock()
	v = n.streamLocked(h.name, owner)
	if v.down != nil {
		n.countersLocked(h.name, owner).refused.Add(1)
		n.mu.Unlock()
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		return nil, opErr(&FaultError{From: h.name, To: owner, Reason: v.down, Errno: syscall.ECONNREFUSED})
	}
	wc.tx = n.countersLocked(h.name, owner)
	wc.rx = n.countersLocked(owner, h.name)
	wc.tx.opened.Add(1)
	n.conns[wc] = struct{}{}
	n.byLocal[wc.local] = wc
	n.mu.Unlock()
	return wc, nil
}

// ctxErr maps a finished context to the error a net.Dialer reports: a timeout for a deadline.
func ctxErr(ctx context.Context) error {
	if ctx.Err() == context.DeadlineExceeded {
		return timeoutError{}
	}
	return ctx.Err()
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Is(err error) bool {
	return err == context.DeadlineExceeded
}
