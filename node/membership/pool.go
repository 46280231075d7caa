package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config describes one node's place in its routing group's pool.
type Config struct {
	Name string // node name, unique in the organisation
	Meta Meta   // published to the pool; Meta.RG names the pool

	// Bind is the gossip listen address (host:port; port 0 picks one).
	Bind string
	// Advertise is the address others reach us at; default: the bound one.
	Advertise string
	// Seeds are gossip addresses of other members, tried on Start and by
	// Rejoin. A pool whose seeds are all down starts alone.
	Seeds []string
	// PeersFile, when set, keeps the gossip addresses of the members
	// seen across restarts (peers.go): read on Start as more seeds and
	// for rejoins, rewritten when a member is seen at a new address.
	PeersFile string
	// Key, when set, encrypts the pool (16, 24 or 32 bytes: AES).
	Key []byte

	// Fast selects tighter probe and gossip intervals (for tests and
	// single-host meshes); the default is memberlist's LAN profile.
	Fast bool

	// Transport replaces memberlist's UDP/TCP transport (the harness
	// injects one that can cut links); Bind is ignored when set.
	Transport memberlist.NodeAwareTransport

	// OnChange is called, serially from the pool's own goroutine, with
	// each new View. It must not block for long.
	OnChange func(View)

	// Verify, when set, proves that a member is the node its gossip name
	// says (see verify.go): a member counts (is listed in View.Members,
	// may be elected master) only after Verify returned nil for its
	// current addresses. Until then, and after a failure, it is listed in
	// View.Unverified and verified again every VerifyRetry. Nil counts
	// every member of the routing group (a lab without identities).
	// A proof ends at the time Verify returns with it (the certificate's
	// NotAfter; zero: no end of its own) and is made again every
	// Reverify while the member stays: a member whose certificate
	// expired or is no longer trusted stops counting then.
	Verify func(ctx context.Context, m Member) (until time.Time, err error)
	// VerifyRetry is the pause after a failed verification; default 10s
	// (1s with Fast).
	VerifyRetry time.Duration
	// Reverify is how often a counted member proves its name again;
	// default 10m (5s with Fast).
	Reverify time.Duration
	// OnDropped, when set, is told of each counted member that stops
	// counting because its proof failed or expired, with the reason
	// (DroppedExpired, DroppedReverify, or the reason given to Recheck).
	// It must not block.
	OnDropped func(member, reason string)

	Logger *slog.Logger
}

// ErrClosed is returned by methods of a closed pool.
var ErrClosed = errors.New("membership: pool closed")

// Pool is a running membership in one routing group's gossip pool.
type Pool struct {
	cfg    Config
	log    *slog.Logger
	ml     *memberlist.Memberlist
	meta   []byte
	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	vwg    sync.WaitGroup // running verifications

	mu     sync.Mutex
	view   View
	known  map[string]string        // every member ever seen: name -> gossip address
	nodes  map[string]memberCopy    // memberlist's live members, copied by events
	checks map[string]*verification // by member name (verify.go)
}

// memberCopy is what the pool keeps of a memberlist node. It is copied in
// the event callbacks, while memberlist holds its node lock: memberlist
// rewrites its Node structs in place, so reading them later (through
// Members) races with its updates (hashicorp/memberlist#306).
type memberCopy struct {
	addr string
	meta []byte
}

// Start creates the pool member, joins the seeds it can reach and
// begins watching membership.
func Start(cfg Config) (*Pool, error) {
	if cfg.Name == "" || cfg.Meta.RG == "" {
		return nil, fmt.Errorf("membership: start: node name and routing group are required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "gossip")
	meta, err := encodeMeta(cfg.Meta)
	if err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, log: logger, meta: meta, kick: make(chan struct{}, 1), done: make(chan struct{}), known: map[string]string{}, nodes: map[string]memberCopy{}, checks: map[string]*verification{}}
	if p.cfg.Reverify <= 0 {
		p.cfg.Reverify = 10 * time.Minute
		if cfg.Fast {
			p.cfg.Reverify = 5 * time.Second
		}
	}
	if p.cfg.VerifyRetry <= 0 {
		p.cfg.VerifyRetry = 10 * time.Second
		if cfg.Fast {
			p.cfg.VerifyRetry = time.Second
		}
	}

	seeds := slices.Clone(cfg.Seeds)
	if cfg.PeersFile != "" {
		saved, err := loadPeers(cfg.PeersFile)
		if err != nil {
			logger.Warn("gossip peers of the last run unreadable; starting from the seeds", "err", err)
		}
		for name, addr := range saved {
			if name != cfg.Name {
				p.known[name] = addr
				if !slices.Contains(seeds, addr) {
					seeds = append(seeds, addr)
				}
			}
		}
	}

	mc, err := p.memberlistConfig()
	if err != nil {
		return nil, err
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: start %s: %w", cfg.Name, err)
	}
	p.ml = ml
	ctx, cancel := context.WithCancel(context.Background())
	p.ctx, p.cancel = ctx, cancel
	p.refresh()
	go p.watch(ctx)
	if len(seeds) > 0 {
		if _, err := ml.Join(seeds); err != nil {
			// Not fatal: the seeds may simply not be up yet. They will
			// join us, or a later Rejoin will reach them.
			logger.Warn("gossip seeds unreachable", "seeds", seeds, "err", err)
		}
	}
	return p, nil
}

// deadNodeReclaim is how long after a member was declared dead its name
// may come back at another address.
const deadNodeReclaim = time.Millisecond

func (p *Pool) memberlistConfig() (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = p.cfg.Name
	mc.Label = "meshd/rg/" + p.cfg.Meta.RG
	mc.Delegate = delegate{p}
	mc.Events = events{p}
	mc.Logger = log.New(&logWriter{log: p.log}, "", 0)
	// A member declared dead may come back at another address (a restart
	// on a new gossip port or host): memberlist's default never lets its
	// name take the new address until the dead entry is reaped
	// (GossipToTheDeadTime, 30s), and meanwhile the group is split, with
	// a master on each side. The name is no proof here anyway: a member
	// counts only once its certificate proves it (verify.go).
	mc.DeadNodeReclaimTime = deadNodeReclaim
	if p.cfg.Fast {
		// Tight, but with room for a loaded machine: a false suspicion
		// costs a master failover.
		mc.ProbeInterval = 300 * time.Millisecond
		mc.ProbeTimeout = 200 * time.Millisecond
		mc.GossipInterval = 50 * time.Millisecond
		mc.SuspicionMult = 3
		mc.PushPullInterval = 5 * time.Second
		mc.TCPTimeout = time.Second
	}
	if len(p.cfg.Key) > 0 {
		mc.SecretKey = p.cfg.Key
	}
	if p.cfg.Transport != nil {
		mc.Transport = p.cfg.Transport
		return mc, nil
	}
	host, port, err := splitHostPort(p.cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("membership: bind %q: %w", p.cfg.Bind, err)
	}
	mc.BindAddr, mc.BindPort = host, port
	if port == 0 {
		// memberlist needs one port for both UDP and TCP; find a free pair.
		free, err := freeUDPTCPPort(host)
		if err != nil {
			return nil, err
		}
		mc.BindPort = free
	}
	mc.AdvertiseAddr, mc.AdvertisePort = mc.BindAddr, mc.BindPort
	if p.cfg.Advertise != "" {
		h, ap, err := splitHostPort(p.cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("membership: advertise %q: %w", p.cfg.Advertise, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = h, ap
	}
	return mc, nil
}

func splitHostPort(addr string) (string, int, error) {
	h, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return h, port, nil
}

// freeUDPTCPPort finds a port free for both TCP and UDP on host.
func freeUDPTCPPort(host string) (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("membership: find port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("membership: no free UDP+TCP port on %s", host)
}

// Addr is the gossip address this member advertises.
func (p *Pool) Addr() string {
	n := p.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// View returns the current membership view.
func (p *Pool) View() View {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.view
}

// IsMaster reports whether this node is its routing group's master now.
func (p *Pool) IsMaster() bool { return p.View().Master == p.cfg.Name }

// Rejoin tries the seeds again (after a partition heals memberlist
// rejoins by itself through push-pull; this makes it immediate).
func (p *Pool) Rejoin() (int, error) {
	if len(p.cfg.Seeds) == 0 {
		return 0, nil
	}
	n, err := p.ml.Join(p.cfg.Seeds)
	if err != nil {
		return n, fmt.Errorf("membership: rejoin: %w", err)
	}
	return n, nil
}

// UpdateMeta publishes new metadata to the pool.
func (p *Pool) UpdateMeta(m Meta) error {
	b, err := encodeMeta(m)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.meta = b
	p.mu.Unlock()
	if err := p.ml.UpdateNode(time.Second); err != nil {
		return fmt.Errorf("membership: update meta: %w", err)
	}
	return nil
}

// Close leaves the pool gracefully (others see us leave at once rather
// than after failure detection) and stops the watcher.
func (p *Pool) Close() error {
	err := p.ml.Leave(time.Second)
	return p.shutdown(err)
}

// Crash stops the member without telling the pool, as a killed process
// would: the others find out through failure detection.
func (p *Pool) Crash() error { return p.shutdown(nil) }

func (p *Pool) shutdown(leaveErr error) error {
	serr := p.ml.Shutdown()
	p.cancel()
	<-p.done
	p.vwg.Wait()
	if err := errors.Join(leaveErr, serr); err != nil {
		return fmt.Errorf("membership: close: %w", err)
	}
	return nil
}

func (p *Pool) watch(ctx context.Context) {
	defer close(p.done)
	every := 10 * time.Second
	if p.cfg.Fast {
		every = time.Second
	}
	rejoin := time.NewTicker(every)
	defer rejoin.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
			p.refresh()
		case <-rejoin.C:
			p.rejoinMissing()
			p.refresh() // verifications due again
		}
	}
}

// rejoinMissing contacts members seen before but not alive now, and the
// seeds when we are alone. memberlist stops talking to members it has
// declared dead, so without this two halves of a healed partition would
// stay apart.
func (p *Pool) rejoinMissing() {
	p.mu.Lock()
	alive := map[string]bool{}
	for _, m := range p.view.Members {
		alive[m.Name] = true
	}
	var addrs []string
	for name, addr := range p.known {
		if !alive[name] && name != p.cfg.Name {
			addrs = append(addrs, addr)
		}
	}
	alone := len(p.view.Members) <= 1
	p.mu.Unlock()
	if alone {
		addrs = append(addrs, p.cfg.Seeds...)
	}
	if len(addrs) == 0 {
		return
	}
	if n, err := p.ml.Join(addrs); n > 0 {
		p.log.Debug("rejoined members", "contacted", n, "err", err)
	}
}

// refresh rebuilds the view from the members memberlist reported (joined
// or updated, and not since left or declared dead) and reports a change.
// Members not verified (yet) are kept out of the election and listed
// apart.
func (p *Pool) refresh() {
	p.mu.Lock()
	nodes := maps.Clone(p.nodes)
	p.mu.Unlock()
	var ms []Member
	var un []Unverified
	for name, n := range nodes {
		meta, err := decodeMeta(n.meta)
		if err != nil {
			p.log.Warn("ignoring member with bad metadata", "peer", name, "err", err)
			continue
		}
		if meta.RG != p.cfg.Meta.RG {
			p.log.Warn("ignoring member of another routing group", "peer", name, "peer_rg", meta.RG)
			continue
		}
		m := Member{Name: name, Addr: n.addr, Meta: meta}
		if ok, reason := p.verified(m); !ok {
			un = append(un, Unverified{Member: m, Reason: reason})
			continue
		}
		ms = append(ms, m)
	}
	v := newView(ms, un)
	p.mu.Lock()
	p.forgetChecks(nodes)
	moved := false
	for _, m := range ms {
		moved = moved || p.known[m.Name] != m.Addr
		p.known[m.Name] = m.Addr
	}
	var save map[string]string
	if moved && p.cfg.PeersFile != "" {
		save = maps.Clone(p.known)
	}
	changed := !v.Equal(p.view)
	old := p.view.Master
	p.view = v
	p.mu.Unlock()
	if save != nil {
		if err := savePeers(p.cfg.PeersFile, p.cfg.Name, save); err != nil {
			p.log.Warn("cannot keep the gossip peers for the next start", "err", err)
		}
	}
	if !changed {
		return
	}
	if old != v.Master {
		p.log.Info("routing group master", "master", v.Master, "previous", old, "members", len(v.Members))
	}
	if p.cfg.OnChange != nil {
		p.cfg.OnChange(v)
	}
}

func (p *Pool) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// delegate publishes our metadata; link state has its own channels, so
// the gossip payload hooks stay empty.
type delegate struct{ p *Pool }

func (d delegate) NodeMeta(limit int) []byte {
	d.p.mu.Lock()
	defer d.p.mu.Unlock()
	if len(d.p.meta) > limit {
		return nil
	}
	return d.p.meta
}
func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// events copies what the pool needs of a node (memberCopy) and pokes the
// watcher: memberlist calls these under its own locks, so nothing here may
// block or call back into memberlist.
type events struct{ p *Pool }

func (e events) NotifyJoin(n *memberlist.Node)   { e.p.track(n, true) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.p.track(n, true) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.p.track(n, false) }

func (p *Pool) track(n *memberlist.Node, alive bool) {
	p.mu.Lock()
	if alive {
		p.nodes[n.Name] = memberCopy{addr: n.Address(), meta: bytes.Clone(n.Meta)}
	} else {
		delete(p.nodes, n.Name)
	}
	p.mu.Unlock()
	p.poke()
}
