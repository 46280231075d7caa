package netem

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// GossipTransport is a memberlist transport for one host: memberlist's own NetTransport (UDP
// packets, TCP streams on one port) with every outgoing packet and stream judged against the
// link to the host owning the destination. Packets on a cut, blackholed or crashed link vanish;
// Drop loses packets with its probability; Delay delays them. Streams are dialed like
// Host.DialContext and accepted streams are tracked, so Cut and Crash reset them.
type GossipTransport struct {
	n     *Network
	host  string
	inner *memberlist.NetTransport
	addr  netip.AddrPort

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	done      chan struct{} // closed by Shutdown
	innerDone chan struct{} // closed once inner is shut down
	wg        sync.WaitGroup
	once      sync.Once

	mu      sync.Mutex
	stopped bool // set before wg.Wait, so no wg.Add races with it
}

var _ memberlist.NodeAwareTransport = (*GossipTransport)(nil)

// GossipTransport starts a gossip transport for the host bound to bindAddr ("127.0.0.1:0" picks a
// free port; the bound port serves both UDP and TCP). Set it as memberlist.Config.Transport and
// leave Config.BindAddr/BindPort alone; memberlist advertises the bound address.
func (h *Host) GossipTransport(bindAddr string) (*GossipTransport, error) {
	ap, err := parseAddr(bindAddr)
	if err != nil {
		return nil, fmt.Errorf("netem: gossip transport %s: %w", bindAddr, err)
	}
	n := h.n
	n.mu.Lock()
	down := n.closed || n.crashed[h.name]
	n.mu.Unlock()
	if down {
		return nil, fmt.Errorf("netem: gossip transport %s on %s: %w", bindAddr, h.name, h.downErr())
	}
	inner, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{ap.Addr().String()},
		BindPort:  int(ap.Port()),
		Logger:    slog.NewLogLogger(n.log.With("sim_node", h.name).Handler(), slog.LevelDebug),
	})
	if err != nil {
		return nil, fmt.Errorf("netem: gossip transport %s on %s: %w", bindAddr, h.name, err)
	}
	g := &GossipTransport{
		n:         n,
		host:      h.name,
		inner:     inner,
		addr:      netip.AddrPortFrom(ap.Addr(), uint16(inner.GetAutoBindPort())),
		packetCh:  make(chan *memberlist.Packet),
		streamCh:  make(chan net.Conn),
		done:      make(chan struct{}),
		innerDone: make(chan struct{}),
	}
	n.mu.Lock()
	if n.closed || n.crashed[h.name] {
		n.mu.Unlock()
		_ = inner.Shutdown()
		return nil, fmt.Errorf("netem: gossip transport %s on %s: %w", bindAddr, h.name, h.downErr())
	}
	n.transports[g] = struct{}{}
	n.tcpOwner[g.addr] = h.name
	n.udpOwner[g.addr] = h.name
	n.mu.Unlock()
	g.wg.Add(1)
	go g.forward()
	return g, nil
}

// Addr returns the bound address ("127.0.0.1:PORT"), UDP and TCP.
func (g *GossipTransport) Addr() string { return g.addr.String() }

// Port returns the bound port.
func (g *GossipTransport) Port() int { return int(g.addr.Port()) }

// forward moves packets and accepted streams from the inner transport to memberlist. After
// Shutdown it drains the inner channels until the inner transport has stopped, so that its
// listener goroutines never block on a send.
func (g *GossipTransport) forward() {
	defer g.wg.Done()
	inP, inS := g.inner.PacketCh(), g.inner.StreamCh()
	for {
		select {
		case p := <-inP:
			select {
			case g.packetCh <- p:
			case <-g.done:
			}
		case c := <-inS:
			wc := newConn(g.n, c, g.host, "", false)
			if !g.n.trackAccepted(wc) {
				_ = c.Close()
				continue
			}
			select {
			case g.streamCh <- wc:
			case <-g.done:
				_ = wc.Close()
			}
		case <-g.done:
			for {
				select {
				case <-inP:
				case c := <-inS:
					_ = c.Close()
				case <-g.innerDone:
					return
				}
			}
		}
	}
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (g *GossipTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return g.inner.FinalAdvertiseAddr(ip, port)
}

// WriteTo implements memberlist.Transport.
func (g *GossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return g.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport: the packet is judged against the
// directed link from this host to the owner of a.Addr.
func (g *GossipTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	ap, err := parseAddr(a.Addr)
	if err != nil {
		return time.Time{}, fmt.Errorf("netem: gossip write to %s: %w", a.Addr, err)
	}
	n := g.n
	n.mu.Lock()
	owner := n.udpOwner[ap]
	v := n.dirLocked(g.host, owner)
	lost := v.down != nil || v.blackhole || (v.drop > 0 && n.rng.Float64() < v.drop)
	c := n.countersLocked(g.host, owner)
	n.mu.Unlock()
	select {
	case <-g.done:
		lost = true
	default:
	}
	if lost {
		c.pktDropped.Add(1)
		return time.Now(), nil // a lost datagram is not an error for its sender
	}
	c.pktSent.Add(1)
	if v.delay <= 0 {
		return g.inner.WriteToAddress(b, a)
	}
	buf := append([]byte(nil), b...)
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return time.Now(), nil
	}
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		t := time.NewTimer(v.delay)
		defer t.Stop()
		select {
		case <-t.C:
			_, _ = g.inner.WriteToAddress(buf, a)
		case <-g.done:
		}
	}()
	return time.Now(), nil
}

// PacketCh implements memberlist.Transport.
func (g *GossipTransport) PacketCh() <-chan *memberlist.Packet { return g.packetCh }

// StreamCh implements memberlist.Transport.
func (g *GossipTransport) StreamCh() <-chan net.Conn { return g.streamCh }

// DialTimeout implements memberlist.Transport.
func (g *GossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return g.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport through Host.DialContext.
func (g *GossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-g.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return g.n.Host(g.host).DialContext(ctx, "tcp", a.Addr)
}

// Shutdown implements memberlist.Transport: it closes the sockets and waits for the transport's
// goroutines. It is idempotent, so a crashed host's memberlist can still call it.
func (g *GossipTransport) Shutdown() error {
	g.shutdown(false)
	return nil
}

// crash closes the transport's sockets as a killed process would; its address stays the host's.
func (g *GossipTransport) crash() { g.shutdown(true) }

func (g *GossipTransport) shutdown(keepOwner bool) {
	g.once.Do(func() {
		close(g.done)
		_ = g.inner.Shutdown()
		close(g.innerDone)
		g.mu.Lock()
		g.stopped = true
		g.mu.Unlock()
		g.wg.Wait()
		n := g.n
		n.mu.Lock()
		delete(n.transports, g)
		if !keepOwner && n.tcpOwner[g.addr] == g.host {
			delete(n.tcpOwner, g.addr)
		}
		if !keepOwner && n.udpOwner[g.addr] == g.host {
			delete(n.udpOwner, g.addr)
		}
		n.mu.Unlock()
	})
}
