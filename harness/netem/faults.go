package netem

import (
	"fmt"
	"strings"
	"syscall"
	"time"
)

// verdict is how the network judges traffic on one link at one moment.
type verdict struct {
	down      error // ErrLinkDown or ErrHostDown; nil when the link passes traffic
	blackhole bool
	delay     time.Duration
	drop      float64
}

// dirLocked judges the directed link from -> to (packets). to == "" is an address of no host.
func (n *Network) dirLocked(from, to string) verdict {
	if n.closed {
		return verdict{down: ErrClosed}
	}
	if (from != "" && n.crashed[from]) || (to != "" && n.crashed[to]) {
		return verdict{down: ErrHostDown}
	}
	if from == "" || to == "" || from == to {
		return verdict{}
	}
	if n.isolated[from] || n.isolated[to] {
		return verdict{down: ErrLinkDown}
	}
	s := n.links[Link{from, to}]
	if s == nil {
		return verdict{}
	}
	if s.cut || s.flapDown {
		return verdict{down: ErrLinkDown}
	}
	return verdict{blackhole: s.blackhole, delay: s.delay, drop: s.drop}
}

// streamLocked judges a TCP connection between a (dialer) and b (listener): a stream needs both
// directions, so a directional cut either way breaks it. Delay and drop are those of a -> b.
func (n *Network) streamLocked(a, b string) verdict {
	fw, bw := n.dirLocked(a, b), n.dirLocked(b, a)
	if fw.down != nil {
		return fw
	}
	if bw.down != nil {
		return bw
	}
	fw.blackhole = fw.blackhole || bw.blackhole
	return fw
}

func (n *Network) linkLocked(a, b string) *linkState {
	l := Link{a, b}
	s := n.links[l]
	if s == nil {
		s = new(linkState)
		n.links[l] = s
	}
	return s
}

// gcLocked forgets fault-free link entries.
func (n *Network) gcLocked(a, b string) {
	for _, l := range []Link{{a, b}, {b, a}} {
		if s := n.links[l]; s != nil && s.zero() {
			delete(n.links, l)
		}
	}
}

// update applies f to the fault table under the lock, records the event, wakes waiters and
// breaks the established connections the new table no longer allows.
func (n *Network) update(kind, a, b, detail string, f func()) {
	n.updateIf(kind, a, b, detail, func() bool { f(); return true })
}

// updateIf is update for changes that may turn out to be no-ops (f returns false): then nothing
// is recorded.
func (n *Network) updateIf(kind, a, b, detail string, f func() bool) {
	n.mu.Lock()
	if n.closed || !f() {
		n.mu.Unlock()
		return
	}
	n.eventLocked(kind, a, b, detail)
	broken := n.brokenConnsLocked()
	// Mark every broken end before closing any (and under the lock, before anything else can
	// reset a connection), so that an end whose peer's reset arrives first still reports the
	// fault rather than a bare reset.
	for _, k := range broken {
		k.c.markKilled(k.err)
	}
	n.broadcastLocked()
	n.mu.Unlock()
	for _, k := range broken {
		k.c.kill(k.err, true)
	}
}

type killed struct {
	c   *conn
	err error
}

// brokenConnsLocked lists the established connections that the current fault table no longer
// allows, with the error their users will see.
func (n *Network) brokenConnsLocked() []killed {
	var out []killed
	for c := range n.conns {
		peer := c.peer
		if !c.dialed {
			peer = n.acceptedPeerLocked(c)
		}
		var v verdict
		if c.dialed {
			v = n.streamLocked(c.host, peer)
		} else {
			v = n.streamLocked(peer, c.host)
		}
		if v.down != nil {
			out = append(out, killed{c, &FaultError{From: c.host, To: peer, Reason: v.down, Errno: syscall.ECONNRESET}})
		}
	}
	return out
}

// acceptedPeerLocked attributes an accepted connection to the host that dialed it, if that
// host dialed through this network.
func (n *Network) acceptedPeerLocked(c *conn) string {
	if c.peer != "" {
		return c.peer
	}
	if d := n.byLocal[c.remote]; d != nil {
		c.peer = d.host
	}
	return c.peer
}

// Cut cuts the link between a and b in both directions: established connections between them
// are closed abruptly (peers see a reset) and new dials fail at once with a refused error.
func (n *Network) Cut(a, b string) {
	if a == b {
		return
	}
	n.update("cut", a, b, "", func() {
		n.linkLocked(a, b).cut = true
		n.linkLocked(b, a).cut = true
	})
}

// CutOneWay cuts only the direction from -> to. Gossip packets from -> to are lost while the
// other direction passes; TCP connections need both directions, so they break either way.
func (n *Network) CutOneWay(from, to string) {
	if from == to {
		return
	}
	n.update("cut-one-way", from, to, "", func() { n.linkLocked(from, to).cut = true })
}

// Heal removes every fault of the link between a and b (cut, one-way cuts, flap, delay, drop,
// blackhole). Host faults (Crash, Isolate) stay.
func (n *Network) Heal(a, b string) {
	n.update("heal", a, b, "", func() {
		n.stopFlapLocked(a, b)
		delete(n.links, Link{a, b})
		delete(n.links, Link{b, a})
	})
}

// Partition cuts every link between a host of groupA and a host of groupB.
func (n *Network) Partition(groupA, groupB []string) {
	detail := fmt.Sprintf("[%s] | [%s]", strings.Join(groupA, ","), strings.Join(groupB, ","))
	n.update("partition", "", "", detail, func() {
		for _, a := range groupA {
			for _, b := range groupB {
				if a != b {
					n.linkLocked(a, b).cut = true
					n.linkLocked(b, a).cut = true
				}
			}
		}
	})
}

// HealAll removes every link fault and every isolation, and stops every flap. Crashed hosts stay
// crashed until Restart.
func (n *Network) HealAll() {
	n.update("heal-all", "", "", "", func() {
		for l := range n.flaps {
			n.stopFlapLocked(l.From, l.To)
		}
		n.links = make(map[Link]*linkState)
		n.isolated = make(map[string]bool)
	})
}

// Delay adds latency d to the link between a and b, both directions: to every connect, to every
// write of a connection before it is sent and to every chunk read before it is returned, and to
// every gossip packet. d <= 0 removes the delay. Delays are not cut short by deadlines: a read
// whose deadline passes while its data is delayed returns a timeout and the data is returned by
// the next read.
func (n *Network) Delay(a, b string, d time.Duration) {
	if a == b {
		return
	}
	d = max(d, 0)
	n.update("delay", a, b, d.String(), func() {
		n.linkLocked(a, b).delay = d
		n.linkLocked(b, a).delay = d
		n.gcLocked(a, b)
	})
}

// Drop makes new connections between a and b (either direction) fail with probability p, and
// loses gossip packets with probability p. p is clamped to [0, 1]; 0 removes the fault.
// Established connections are not affected. Decisions come from the seeded source of Options.
func (n *Network) Drop(a, b string, p float64) {
	if a == b {
		return
	}
	p = min(max(p, 0), 1)
	n.update("drop", a, b, fmt.Sprintf("p=%g", p), func() {
		n.linkLocked(a, b).drop = p
		n.linkLocked(b, a).drop = p
		n.gcLocked(a, b)
	})
}

// Blackhole makes the link between a and b lose traffic silently: dials hang until their context
// ends, reads and writes of established connections hang until their deadline (or until the link
// is healed, when the held data flows again), gossip packets vanish.
func (n *Network) Blackhole(a, b string) {
	if a == b {
		return
	}
	n.update("blackhole", a, b, "", func() {
		n.linkLocked(a, b).blackhole = true
		n.linkLocked(b, a).blackhole = true
	})
}

// Flap makes the link between a and b alternate between cut and healed every period, starting
// with cut, driven by a goroutine of the network until Heal, HealAll, another Flap of the same
// pair, or Close. period <= 0 stops a flap and leaves the link up.
func (n *Network) Flap(a, b string, period time.Duration) {
	if a == b {
		return
	}
	if a > b {
		a, b = b, a
	}
	var stop chan struct{}
	n.update("flap", a, b, "period="+period.String(), func() {
		n.stopFlapLocked(a, b)
		if period <= 0 {
			return
		}
		stop = make(chan struct{})
		n.flaps[Link{a, b}] = stop
		n.linkLocked(a, b).flapDown = true
		n.linkLocked(b, a).flapDown = true
		n.wg.Add(1)
	})
	if stop != nil {
		go n.flapLoop(a, b, period, stop)
	}
}

func (n *Network) flapLoop(a, b string, period time.Duration, stop chan struct{}) {
	defer n.wg.Done()
	t := time.NewTicker(period)
	defer t.Stop()
	down := true
	for {
		select {
		case <-stop:
			return
		case <-n.done:
			return
		case <-t.C:
		}
		down = !down
		kind := "flap-up"
		if down {
			kind = "flap-down"
		}
		n.updateIf(kind, a, b, "", func() bool {
			select {
			case <-stop: // stopped while we waited for the lock
				return false
			default:
			}
			n.linkLocked(a, b).flapDown = down
			n.linkLocked(b, a).flapDown = down
			n.gcLocked(a, b)
			return true
		})
	}
}

func (n *Network) stopFlapLocked(a, b string) {
	if a > b {
		a, b = b, a
	}
	l := Link{a, b}
	if stop, ok := n.flaps[l]; ok {
		close(stop)
		delete(n.flaps, l)
	}
	for _, l := range []Link{{a, b}, {b, a}} {
		if s := n.links[l]; s != nil {
			s.flapDown = false
		}
	}
	n.gcLocked(a, b)
}

// Isolate cuts host from every other host, including hosts created later, until Unisolate or
// HealAll.
func (n *Network) Isolate(host string) {
	n.update("isolate", host, "", "", func() { n.isolated[host] = true })
}

// Unisolate ends Isolate.
func (n *Network) Unisolate(host string) {
	n.update("unisolate", host, "", "", func() { delete(n.isolated, host) })
}

// Crash kills host abruptly: its listeners and gossip transports are closed, every established
// connection to or from it is reset (SO_LINGER 0), and its dials and listens fail with
// ErrHostDown until Restart. Its gossip packets are lost. Nothing is flushed: this is kill -9
// as seen from the network.
func (n *Network) Crash(host string) {
	var lns []*listener
	var gts []*GossipTransport
	n.update("crash", host, "", "", func() {
		n.crashed[host] = true
		lns, _, gts = n.collectLocked(func(h string) bool { return h == host })
	})
	for _, l := range lns {
		_ = l.closeKeepOwner()
	}
	for _, g := range gts {
		g.crash()
	}
}

// Restart lets a crashed host listen and dial again. The node itself restarts its listeners.
func (n *Network) Restart(host string) {
	n.update("restart", host, "", "", func() { delete(n.crashed, host) })
}
