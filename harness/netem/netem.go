package netem

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configure a Network. The zero value is usable.
type Options struct {
	// Seed seeds the random source used for Drop decisions (connections and packets), so a run
	// with the same seed and the same sequence of decisions drops the same things. 0 means 1.
	Seed uint64
	// Logger receives fault changes (Info) and flap toggles (Debug). Default: discard.
	Logger *slog.Logger
	// Now timestamps events. Default time.Now.
	Now func() time.Time
	// MaxEvents bounds the event log; older events are discarded first. Default 10000.
	MaxEvents int
}

// Link is a directed pair of hosts.
type Link struct{ From, To string }

func (l Link) String() string { return l.From + "->" + l.To }

// Event is one timestamped change of the fault table, for reports.
type Event struct {
	Time   time.Time
	Kind   string // cut, cut-one-way, heal, partition, heal-all, delay, drop, blackhole, flap, flap-down, flap-up, isolate, unisolate, crash, restart
	A, B   string // hosts involved; B is "" for host events
	Detail string // e.g. "50ms", "p=0.3", "period=200ms", group lists for partition
}

func (e Event) String() string {
	s := e.Time.Format("15:04:05.000") + " " + e.Kind + " " + e.A
	if e.B != "" {
		s += " " + e.B
	}
	if e.Detail != "" {
		s += " " + e.Detail
	}
	return s
}

// LinkStats are the counters of one directed link. Connection counters are attributed to the
// link from the dialing host to the listening host; bytes to the direction they travelled. To is
// "" for traffic to addresses owned by no host. Bytes are counted on connections dialed
// through the network.
type LinkStats struct {
	Link
	ConnsOpened    uint64 // connections established
	ConnsRefused   uint64 // dials refused by a fault (cut, drop, crash)
	ConnsBroken    uint64 // established connections closed by a fault
	Bytes          uint64 // stream bytes delivered From -> To
	PacketsSent    uint64 // gossip packets passed From -> To
	PacketsDropped uint64 // gossip packets dropped From -> To
}

type counters struct {
	opened, refused, broken, bytes, pktSent, pktDropped atomic.Uint64
}

// linkState is the fault state of one directed link.
type linkState struct {
	cut       bool // Cut / CutOneWay / Partition
	flapDown  bool // current phase of a Flap
	blackhole bool
	delay     time.Duration
	drop      float64
}

func (s *linkState) zero() bool {
	return !s.cut && !s.flapDown && !s.blackhole && s.delay == 0 && s.drop == 0
}

// Network is an in-process, fault-injectable network on loopback. Hosts created with Host use
// real sockets; the Network keeps a registry from listening addresses to hosts and judges every
// connection and gossip packet against the fault table of the link between the two hosts.
// All methods are safe for concurrent use.
type Network struct {
	log       *slog.Logger
	now       func() time.Time
	maxEvents int

	mu         sync.Mutex
	rng        *rand.Rand
	hosts      map[string]*Host
	links      map[Link]*linkState
	flaps      map[Link]chan struct{} // keyed by the ordered pair (a<b)
	isolated   map[string]bool
	crashed    map[string]bool
	tcpOwner   map[netip.AddrPort]string
	udpOwner   map[netip.AddrPort]string
	conns      map[*conn]struct{}
	byLocal    map[netip.AddrPort]*conn // dialed conns by their local address (attributes accepted ends)
	listeners  map[*listener]struct{}
	transports map[*GossipTransport]struct{}
	stats      map[Link]*counters
	events     []Event
	changed    chan struct{} // closed and replaced on every fault change
	closed     bool

	done chan struct{}
	wg   sync.WaitGroup // flap goroutines
}

// New returns an empty network.
func New(opts Options) *Network {
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 10000
	}
	return &Network{
		log:        opts.Logger,
		now:        opts.Now,
		maxEvents:  opts.MaxEvents,
		rng:        rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		hosts:      make(map[string]*Host),
		links:      make(map[Link]*linkState),
		flaps:      make(map[Link]chan struct{}),
		isolated:   make(map[string]bool),
		crashed:    make(map[string]bool),
		tcpOwner:   make(map[netip.AddrPort]string),
		udpOwner:   make(map[netip.AddrPort]string),
		conns:      make(map[*conn]struct{}),
		byLocal:    make(map[netip.AddrPort]*conn),
		listeners:  make(map[*listener]struct{}),
		transports: make(map[*GossipTransport]struct{}),
		stats:      make(map[Link]*counters),
		changed:    make(chan struct{}),
		done:       make(chan struct{}),
	}
}

// Host returns the view of the named host, creating it on first use. The same name always
// returns the same *Host.
func (n *Network) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.hosts[name]
	if !ok {
		h = &Host{n: n, name: name}
		n.hosts[name] = h
	}
	return h
}

// Hosts returns the names of all hosts, sorted.
func (n *Network) Hosts() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	names := make([]string, 0, len(n.hosts))
	for name := range n.hosts {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Owner returns the host listening on the TCP address addr ("127.0.0.1:2525").
func (n *Network) Owner(addr string) (string, bool) {
	ap, err := parseAddr(addr)
	if err != nil {
		return "", false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.tcpOwner[ap]
	return h, ok
}

// Crashed reports whether host is crashed.
func (n *Network) Crashed(host string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.crashed[host]
}

// Stats returns the counters of every link that saw traffic or faults, sorted by link.
func (n *Network) Stats() []LinkStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]LinkStats, 0, len(n.stats))
	for l, c := range n.stats {
		out = append(out, LinkStats{
			Link:           l,
			ConnsOpened:    c.opened.Load(),
			ConnsRefused:   c.refused.Load(),
			ConnsBroken:    c.broken.Load(),
			Bytes:          c.bytes.Load(),
			PacketsSent:    c.pktSent.Load(),
			PacketsDropped: c.pktDropped.Load(),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].From != out[j].From {
			return out[i].From < out[j].From
		}
		return out[i].To < out[j].To
	})
	return out
}

// LinkStats returns the counters of the directed link from -> to.
func (n *Network) LinkStats(from, to string) LinkStats {
	n.mu.Lock()
	c := n.countersLocked(from, to)
	n.mu.Unlock()
	return LinkStats{
		Link:           Link{from, to},
		ConnsOpened:    c.opened.Load(),
		ConnsRefused:   c.refused.Load(),
		ConnsBroken:    c.broken.Load(),
		Bytes:          c.bytes.Load(),
		PacketsSent:    c.pktSent.Load(),
		PacketsDropped: c.pktDropped.Load(),
	}
}

// Events returns a copy of the event log, oldest first.
func (n *Network) Events() []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Event(nil), n.events...)
}

// Close stops every flap goroutine, shuts down every gossip transport, and closes every
// listener and connection. Hosts cannot listen or dial afterwards. Close is idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.done)
	n.flaps = make(map[Link]chan struct{})
	lns, conns, gts := n.collectLocked(func(string) bool { return true })
	reason := &FaultError{Reason: ErrClosed, Errno: syscall.ECONNRESET}
	for _, c := range conns {
		c.markKilled(reason)
	}
	n.broadcastLocked()
	n.mu.Unlock()

	n.wg.Wait()
	for _, g := range gts {
		_ = g.Shutdown()
	}
	for _, l := range lns {
		_ = l.Listener.Close()
	}
	for _, c := range conns {
		c.kill(reason, false)
	}
	return nil
}

// collectLocked returns the listeners, connections and transports that belong to hosts
// matching match (connections: either end).
func (n *Network) collectLocked(match func(string) bool) ([]*listener, []*conn, []*GossipTransport) {
	var lns []*listener
	for l := range n.listeners {
		if match(l.host) {
			lns = append(lns, l)
		}
	}
	var conns []*conn
	for c := range n.conns {
		if match(c.host) || (c.dialed && match(c.peer)) {
			conns = append(conns, c)
		}
	}
	var gts []*GossipTransport
	for g := range n.transports {
		if match(g.host) {
			gts = append(gts, g)
		}
	}
	return lns, conns, gts
}

func (n *Network) countersLocked(from, to string) *counters {
	l := Link{from, to}
	c, ok := n.stats[l]
	if !ok {
		c = new(counters)
		n.stats[l] = c
	}
	return c
}

// broadcastLocked wakes everything waiting for a fault change (blackholed dials and conns).
func (n *Network) broadcastLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

func (n *Network) eventLocked(kind, a, b, detail string) {
	ev := Event{Time: n.now(), Kind: kind, A: a, B: b, Detail: detail}
	if len(n.events) >= n.maxEvents {
		copy(n.events, n.events[1:])
		n.events = n.events[:len(n.events)-1]
	}
	n.events = append(n.events, ev)
	level := slog.LevelInfo
	if kind == "flap-down" || kind == "flap-up" {
		level = slog.LevelDebug
	}
	n.log.Log(context.Background(), level, "netem: "+kind, "node", a, "peer", b, "detail", detail)
}

// parseAddr turns "host:port" into a loopback AddrPort. An empty or unspecified host and
// "localhost" mean 127.0.0.1.
func parseAddr(addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q: %w", port, err)
	}
	var ip netip.Addr
	switch host {
	case "", "localhost":
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	default:
		ip, err = netip.ParseAddr(host)
		if err != nil {
			return netip.AddrPort{}, err
		}
		ip = ip.Unmap()
		if ip.IsUnspecified() {
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
	}
	return netip.AddrPortFrom(ip, uint16(p)), nil
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := parseAddr(a.String())
	return ap
}
