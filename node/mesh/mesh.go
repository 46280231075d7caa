package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/node/membership"
	"github.com/meshd/meshd/routing"
)

// Mesh is a running node's link-state machinery.
type Mesh struct {
	cfg    Config
	log    *slog.Logger
	db     *linkstate.LSDB
	sub    *linkstate.Subscription
	router atomic.Pointer[routing.Router] // set by Start; read by the delivery loop
	pool   *membership.Pool
	srv    *channel.Server
	cli    atomic.Pointer[channel.Client] // set by Start; read by installs arriving on listeners already serving
	probe  *prober
	syncer *syncer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // master state changed: originate if needed
	// metaKick: this node's gossip metadata changed (org.go, publishMeta)
	metaKick chan struct{}

	nodeIPs  atomic.Pointer[ipIndex]
	owned    *ownership
	ownedSet atomic.Pointer[routing.Owned] // last set handed to the router

	orgPeers orgPeers                 // document versions X-LINK2STATE peers reported (org.go)
	topo     atomic.Pointer[Topology] // the live part of cfg (topology.go)

	listed   *listed     // nodes recent records listed (listed.go)
	draining atomic.Bool // this node drains (drain.go)

	mu     sync.Mutex
	meta   membership.Meta // what this node gossips about itself
	view   membership.View
	master masterState
	stats  Stats
}

// Stats count what the mesh side did, for metrics and the harness.
type Stats struct {
	Originated    uint64 // records this node originated as master
	Installed     uint64 // records installed from elsewhere
	SyncSessions  uint64 // X-LINK2STATE sessions opened
	SyncFailures  uint64
	NoExtension   uint64 // peers that did not offer X-LINK2STATE
	Observations  uint64 // pair transitions this node observed
	MasterChanges uint64
	// ObservationsRefused counts members' observations of pairs whose
	// source is another node (a member probes only its own pairs).
	ObservationsRefused uint64
}

// New builds the mesh side of a node; Start runs it.
func New(cfg Config) (*Mesh, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	// The caller's logger already names the node and routing group.
	logger := cfg.Logger
	db, err := linkstate.New(linkstate.Options{Keyring: cfg.Keyring, Now: cfg.Now, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	declared := map[string][]string{}
	for rg, pats := range cfg.Declared {
		declared[rg] = slices.Clone(pats)
	}
	declared[cfg.RG] = append(declared[cfg.RG], ownedPatterns(cfg.LocalSpaces)...)
	owned, err := newOwnership(cfg.RG, cfg.OwnedFile, cfg.TTL, declared, cfg.Keyring.Known)
	if err != nil {
		return nil, err
	}
	m := &Mesh{cfg: cfg, log: logger, db: db, kick: make(chan struct{}, 1), metaKick: make(chan struct{}, 1), owned: owned,
		listed: newListed(cfg.ListedFile, cfg.Now(), logger)}
	m.master = newMasterState()
	m.topo.Store(cfg.topology())
	return m, nil
}

// LSDB is the node's link-state database.
func (m *Mesh) LSDB() *linkstate.LSDB { return m.db }

// ChannelStats returns what the port-691 listener refused so far (zero
// before Start).
func (m *Mesh) ChannelStats() channel.Stats {
	if m.srv == nil {
		return channel.Stats{}
	}
	return m.srv.Stats()
}

// ChannelMembers names the members holding a port-691 session at this
// node now (none unless it is master; nil before Start).
func (m *Mesh) ChannelMembers() []string {
	if m.srv == nil {
		return nil
	}
	return m.srv.Members()
}

// Routes returns the current routing table (nil before Start).
func (m *Mesh) Routes() *routing.Table {
	r := m.router.Load()
	if r == nil {
		return nil
	}
	return r.Table()
}

// RoutesChanged is signalled after every new routing table.
func (m *Mesh) RoutesChanged() <-chan struct{} { return m.router.Load().Changed() }

// View is the current membership of this node's routing group.
func (m *Mesh) View() membership.View {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view
}

// IsMaster reports whether this node is its group's master.
func (m *Mesh) IsMaster() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view.Master == m.cfg.Node
}

// Stats returns counters.
func (m *Mesh) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Start joins the pool and starts every loop.
func (m *Mesh) Start() error {
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.sub = m.db.Subscribe()
	router, err := routing.NewRouter(routing.Self{Node: m.cfg.Node, RG: m.cfg.RG}, nil, routing.RouterOptions{Logger: m.log})
	if err != nil {
		return fmt.Errorf("mesh: router: %w", err)
	}
	m.router.Store(router)
	m.updateOwned(m.db.Snapshot().All(), true)
	m.srv = channel.NewServer(channel.ServerConfig{
		Listener: m.cfg.LinkState, TLS: m.cfg.ServerTLS, Node: m.cfg.Node, RG: m.cfg.RG,
		Delegate: channelDelegate{m}, Identities: m.cfg.Identify != nil, Logger: m.log,
		Holds: m.cfg.Holds,
	})
	m.cli.Store(channel.NewClient(channel.ClientConfig{
		Node: m.cfg.Node, RG: m.cfg.RG, TLS: m.cfg.ChannelTLS, Dial: m.cfg.Dial,
		OnRecords:    func(full bool, recs [][]byte) { m.installEncoded(recs, true) },
		Observations: m.ownObservations,
		OnConnected:  m.onMasterSession,
		Logger:       m.log,
	}))
	m.probe = newProber(m)
	m.syncer = newSyncer(m)
	m.mu.Lock()
	m.meta = membership.Meta{RG: m.cfg.RG, SMTP: m.cfg.MeshSMTP, LinkState: m.cfg.LinkStateAddr, Priority: m.cfg.Priority,
		Draining: m.draining.Load()}
	m.mu.Unlock()
	if _, v := m.orgRecord(); v > 0 {
		m.meta.Org = v
	}
	var verify func(context.Context, membership.Member) (time.Time, error)
	if m.cfg.MemberTLS != nil {
		verify = m.verifyMember
	}
	pool, err := membership.Start(membership.Config{
		Verify: verify,
		Name:   m.cfg.Node,
		Meta:   m.meta,
		Bind:   m.cfg.GossipBind, Advertise: m.cfg.GossipAdvertise, Seeds: m.cfg.Seeds, PeersFile: m.cfg.GossipPeersFile, Key: m.cfg.GossipKey,
		Fast: m.cfg.FastGossip, Transport: m.cfg.GossipTransport, OnChange: m.onView, Logger: m.log,
		OnDropped: m.cfg.OnMemberDropped, Reverify: m.cfg.Reverify,
	})
	if err != nil {
		m.srv.Close()
		m.cli.Load().Close()
		m.router.Load().Close()
		return err
	}
	m.pool = pool
	m.onView(pool.View())
	m.wg.Add(4)
	go func() { defer m.wg.Done(); m.publishMeta() }()
	go func() { defer m.wg.Done(); m.run() }()
	go func() { defer m.wg.Done(); m.probe.run(m.ctx) }()
	go func() { defer m.wg.Done(); m.syncer.run(m.ctx) }()
	return nil
}

// GossipAddr is the address this node gossips on.
func (m *Mesh) GossipAddr() string { return m.pool.Addr() }

// Close leaves the pool gracefully and stops everything.
func (m *Mesh) Close() error { return m.stop(false) }

// Crash stops without leaving the pool, as a killed process would.
func (m *Mesh) Crash() error { return m.stop(true) }

func (m *Mesh) stop(crash bool) error {
	if m.cancel == nil {
		return nil
	}
	var errs []error
	if crash {
		errs = append(errs, m.pool.Crash())
	} else {
		errs = append(errs, m.pool.Close())
	}
	m.cancel()
	m.wg.Wait()
	if !crash {
		m.listed.update(m.db.Snapshot(), m.cfg.Now(), true)
	}
	errs = append(errs, m.cli.Load().Close(), m.srv.Close(), m.router.Load().Close())
	m.sub.Close()
	return errors.Join(errs...)
}

func (m *Mesh) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// onView runs on membership's goroutine after each change.
func (m *Mesh) onView(v membership.View) {
	m.mu.Lock()
	old := m.view
	m.view = v
	if old.Master != v.Master {
		m.stats.MasterChanges++
	}
	m.mu.Unlock()
	if old.Master == m.cfg.Node && v.Master != m.cfg.Node {
		m.srv.DropMembers()
	}
	if v.Master == m.cfg.Node {
		// A member that stopped counting (left, or its proof failed or
		// expired) keeps no session: it would go on feeding us
		// observations it may no longer make.
		for _, node := range m.srv.DropNotMembers(func(node string) bool { _, ok := v.Member(node); return ok }) {
			if m.cfg.OnSessionDropped != nil {
				m.cfg.OnSessionDropped(node, ReasonNotMember)
			}
		}
	}
	if v.Master == m.cfg.Node || v.Master == "" {
		m.cli.Load().SetMaster("")
	} else if mm, ok := v.Member(v.Master); ok {
		m.cli.Load().SetMaster(mm.LinkState)
	}
	m.updateDraining()
	m.poke()
}

// ReasonNotMember is why a member's port-691 session is closed when the
// member stops counting in gossip (Config.OnSessionDropped).
const ReasonNotMember = "not_member"

// Recheck has every live member prove itself again at once, after the
// node's trusted CAs changed (a reload of mesh.identity.ca_files): the
// port-691 sessions of members at this node (when it is master) are
// checked now with trusted and closed when their certificate fails (the
// members it names are returned), and every counted gossip member is
// verified again, stopping to count as soon as its proof fails (reason
// goes to the log and to Config.OnMemberDropped). A master that no
// longer proves itself stops counting too, so members follow the next one.
func (m *Mesh) Recheck(reason string, trusted func(*tls.ConnectionState) error) []string {
	dropped := m.srv.Recheck(trusted)
	m.pool.Recheck(reason)
	return dropped
}

// verifyMember proves that gossip member mb is the node it names: a
// mutual-TLS handshake with the port-691 address it advertises, whose
// certificate must name mb.Name in our routing group (MemberTLS checks
// it). Nothing is sent after the handshake. The proof ends when the first
// certificate of the chain it showed expires (membership re-checks then,
// and every membership.Config.Reverify).
func (m *Mesh) verifyMember(ctx context.Context, mb membership.Member) (time.Time, error) {
	if mb.LinkState == "" {
		return time.Time{}, errors.New("mesh: member advertises no link-state address")
	}
	conn, err := m.cfg.Dial(ctx, "tcp", mb.LinkState)
	if err != nil {
		return time.Time{}, fmt.Errorf("mesh: verify member %s: %w", mb.Name, err)
	}
	defer conn.Close()
	tc := tls.Client(conn, m.cfg.MemberTLS(mb.Name))
	if err := tc.HandshakeContext(ctx); err != nil {
		return time.Time{}, fmt.Errorf("mesh: verify member %s at %s: %w", mb.Name, mb.LinkState, err)
	}
	var until time.Time
	for _, c := range tc.ConnectionState().PeerCertificates {
		if until.IsZero() || c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	return until, nil
}

// authorizeMember admits to the channel only live members of our pool.
func (m *Mesh) authorizeMember(node string, _ net.Addr) bool {
	_, ok := m.View().Member(node)
	return ok
}

// encodedAll is the whole LSDB, encoded, for the channel.
func (m *Mesh) encodedAll() [][]byte {
	snap := m.db.Snapshot()
	var out [][]byte
	// The organisation document travels with the records, first: a member
	// that joins later gets it in the same exchange, and knows the routing
	// groups it names before their records are installed.
	if rec, _ := m.orgRecord(); rec != nil {
		out = append(out, rec)
	}
	for _, r := range snap.All() {
		if b, ok := snap.Encoded(r.RG); ok {
			out = append(out, b)
		}
	}
	return out
}

// onMasterSession: on each new session with the master, hand it every
// record we hold, so that a freshly started master learns its group's
// last record (and its epoch) from the members.
func (m *Mesh) onMasterSession(master string, connected bool) {
	if !connected {
		return
	}
	if all := m.encodedAll(); len(all) > 0 {
		m.cli.Load().Hand(all)
	}
}

// installEncoded installs records from the wire. Records that are not
// newer are ignored silently; others that fail are logged. fromMaster
// marks the channel's own pushes, which need no handing back.
func (m *Mesh) installEncoded(recs [][]byte, fromMaster bool) (installed [][]byte) {
	for _, b := range recs {
		if IsOrgRecord(b) {
			if _, err := m.offerOrgRecord(b, "mesh", fromMaster); err != nil {
				m.log.Debug("organisation document not taken", "err", err)
			}
			continue
		}
		ok, err := m.db.InstallEncoded(b)
		switch {
		case err != nil && !errors.Is(err, linkstate.ErrStale):
			m.log.Warn("record refused", "err", err)
		case ok:
			installed = append(installed, b)
		}
	}
	if len(installed) > 0 {
		m.mu.Lock()
		m.stats.Installed += uint64(len(installed))
		m.mu.Unlock()
		if !fromMaster && !m.IsMaster() && m.cli.Load() != nil {
			m.cli.Load().Hand(installed)
		}
	}
	return installed
}

// originateBatch is how long the master gathers changes before it
// originates a record.
const originateBatch = 10 * time.Millisecond

// run owns origination, LSDB change fan-out and expiry.
func (m *Mesh) run() {
	// Re-check every second: damping suppression ends and refreshes fall due
	// without any event to announce them.
	refresh := time.NewTicker(time.Second)
	defer refresh.Stop()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	var collect <-chan time.Time
	var saveListed <-chan time.Time // a change of listed.go's memory waits for its save
	updateListed := func() {
		if wait := m.listed.update(m.db.Snapshot(), m.cfg.Now(), false); wait > 0 && saveListed == nil {
			saveListed = time.After(wait)
		}
	}
	for {
		m.resetExpiry(expiry)
		select {
		case <-m.ctx.Done():
			return
		case <-m.kick:
			// Gather the observations of one event (a cut fails every
			// pair of a connector within milliseconds) into one record.
			if collect == nil {
				collect = time.After(originateBatch)
			}
		case <-collect:
			collect = nil
			if wait := m.originate(); wait > 0 {
				collect = time.After(wait)
			}
		case <-refresh.C:
			m.originate()
			m.updateOwned(nil, true) // groups out of the configuration; forgetting after 2×TTL
			updateListed()
		case <-saveListed:
			saveListed = nil
			updateListed()
		case <-expiry.C:
			if gone := m.db.Expire(m.cfg.Now()); len(gone) > 0 {
				m.log.Info("records aged out", "record_rgs", gone)
			}
		case <-m.sub.C():
			m.onLSDBChange(m.sub.Changes())
			updateListed()
		}
	}
}

func (m *Mesh) resetExpiry(t *time.Timer) {
	next, ok := m.db.NextExpiry()
	d := time.Hour
	if ok {
		d = max(next.Sub(m.cfg.Now()), 10*time.Millisecond)
	}
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

// onLSDBChange fans a change out: deltas to members (when master), the
// router, and X-LINK2STATE sessions to other groups.
func (m *Mesh) onLSDBChange(rgs []string) {
	snap := m.db.Snapshot()
	if m.IsMaster() {
		var recs [][]byte
		for _, rg := range rgs {
			if b, ok := snap.Encoded(rg); ok {
				recs = append(recs, b)
			}
		}
		m.srv.Push(recs)
	}
	var recs []*linkstate.Record
	for _, rg := range rgs {
		if r, ok := snap.Lookup(rg); ok {
			recs = append(recs, r) // an expired record is not here: its owner stays remembered
		}
	}
	m.updateOwned(recs, false)
	m.router.Load().Update(snap.Records())
	m.syncer.trigger()
	m.probe.reconfigure()
}

// MemberAt names the mesh node whose mesh SMTP listener is addr ("" when
// no record lists it).
func (m *Mesh) MemberAt(addr string) string {
	if addr == "" {
		return ""
	}
	for _, r := range m.db.Snapshot().Records() {
		for _, mb := range r.Members {
			if mb.SMTP == addr {
				return mb.Name
			}
		}
	}
	return ""
}

// KnowsNodeIP reports whether ip is the address of a mesh node in the
// LSDB (its mesh SMTP listener's host), or of this node.
func (m *Mesh) KnowsNodeIP(ip netip.Addr) bool {
	ix := m.nodeIPs.Load()
	if ix == nil || ix.seq != m.db.Snapshot().Seq() {
		ix = m.indexNodeIPs()
	}
	return ix.ips[ip.Unmap()]
}

// OwnsDomain reports whether a routing group of the mesh has an address
// space (other than "*") that matches domain, in its record or, while the
// record is absent, by configuration or as last seen.
func (m *Mesh) OwnsDomain(domain string) bool {
	if m.ownedSet.Load().Owns(domain) {
		return true // its owner may be away, but it is the organisation's
	}
	for _, r := range m.db.Snapshot().Records() {
		for _, as := range r.AddressSpaces {
			if as.Pattern == domain || (strings.HasPrefix(as.Pattern, "*.") && strings.HasSuffix(domain, as.Pattern[1:])) {
				return true
			}
		}
	}
	return false
}

type ipIndex struct {
	seq uint64
	ips map[netip.Addr]bool
}

func (m *Mesh) indexNodeIPs() *ipIndex {
	snap := m.db.Snapshot()
	ix := &ipIndex{seq: snap.Seq(), ips: map[netip.Addr]bool{}}
	add := func(hostport string) {
		host, _, err := net.SplitHostPort(hostport)
		if err != nil {
			return
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			ix.ips[ip.Unmap()] = true
		}
	}
	add(m.cfg.MeshSMTP)
	for _, r := range snap.Records() {
		for _, mb := range r.Members {
			add(mb.SMTP)
		}
	}
	m.nodeIPs.Store(ix)
	return ix
}

// KnowsNode reports whether node may be a node of routing group rg, as far
// as this node can tell: a live gossip member of our own group, or a
// member of rg's record in the LSDB. For a group of the organisation whose
// record has not arrived yet (a first X-LINK2STATE session brings it), a
// verified certificate is all there is to go on, and it is accepted.
func (m *Mesh) KnowsNode(rg, node string) bool {
	recent := m.recentlyListed(rg, node) // listed.go; folds every LSDB change in
	if !m.cfg.Keyring.Known(rg) && rg != m.cfg.RG {
		return false
	}
	if rg == m.cfg.RG {
		if node == m.cfg.Node {
			return true
		}
		if _, ok := m.View().Member(node); ok {
			return true
		}
	}
	r, ok := m.db.Snapshot().Get(rg)
	if !ok {
		return true
	}
	for _, mb := range r.Members {
		if mb.Name == node {
			return true
		}
	}
	return recent
}

// updateOwned folds records into the owned domains (and, with sweep,
// looks for removed groups), saves them when they changed, and hands the
// set to the router.
func (m *Mesh) updateOwned(recs []*linkstate.Record, sweep bool) {
	first := m.ownedSet.Load() == nil
	changed := m.owned.update(recs)
	if sweep {
		changed = m.owned.sweep(m.cfg.Now()) || changed
	}
	if !changed && !first {
		return
	}
	if err := m.owned.save(); err != nil {
		m.log.Error("cannot save owned domains", "err", err)
	}
	o := m.owned.spaces()
	m.ownedSet.Store(o)
	if r := m.router.Load(); r != nil {
		r.SetOwned(o)
	}
}
