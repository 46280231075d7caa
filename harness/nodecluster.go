package harness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/meshd/meshd/harness/netem"
	"github.com/meshd/meshd/node"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/pki"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
)

// orgKey signs the records of a simulated organisation (HMAC mode).
var orgKey = base64.StdEncoding.EncodeToString([]byte("meshd-harness-org-key-0123456789"))

// ballastID is the held message that fills a node's queue when its disk
// is "full".
const ballastID = "harness-ballast-disk-full"

// nodeCluster is the real mesh: one node.Node per topology node, each on
// its own netem host, all in this process on loopback.
type nodeCluster struct {
	sc     *Scenario
	opts   Options
	log    *slog.Logger
	net    *netem.Network
	client *smtp.Client

	mu         sync.Mutex
	nodes      map[string]*simNode
	smarthosts []smarthost

	broken atomic.Bool // BreakForwarding armed (from t=0)

	orgVersion uint64 // of the last organisation document applied (org steps)
}

// simNode is one node across its incarnations.
type simNode struct {
	name, rg string
	cfg      config.Config
	host     *netem.Host
	prebound map[string]net.Listener // address -> listener bound before the first start
	gossip   string                  // gossip address once known
	n        *node.Node              // nil while crashed
	m        *mesh.Mesh              // n's mesh side
	orig     uint64                  // Originated of earlier incarnations
	full     bool
}

// StartCluster starts every node of the scenario's topology on a netem
// network and returns once all of them run (not yet converged). It is the
// default Options.NewCluster.
func StartCluster(ctx context.Context, sc *Scenario, opts Options) (Cluster, error) {
	opts = opts.withDefaults()
	c := &nodeCluster{sc: sc, opts: opts, log: opts.Logger,
		net:   netem.New(netem.Options{Seed: uint64(sc.Seed), Logger: opts.Logger}),
		nodes: map[string]*simNode{}}
	clientHost := c.net.Host("harness-client")
	c.client = smtp.NewClient(smtp.ClientConfig{HeloName: "harness.meshd.test", Dial: clientHost.DialContext,
		ConnectTimeout: 2 * time.Second, CommandTimeout: 10 * time.Second})
	if err := c.start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *nodeCluster) start(ctx context.Context) error {
	t := &c.sc.Topology
	meshAddr := map[string]string{}
	// Bind the listeners of every node first: connectors name the mesh
	// addresses of their targets.
	for _, rg := range t.RoutingGroups {
		for _, ns := range rg.Nodes {
			sn := &simNode{name: ns.Name, rg: rg.Name, host: c.net.Host(ns.Name), prebound: map[string]net.Listener{}}
			var addrs []string // smtp, mesh, linkstate
			for range 3 {
				ln, err := sn.host.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return fmt.Errorf("harness: bind for %s: %w", ns.Name, err)
				}
				sn.prebound[ln.Addr().String()] = ln
				addrs = append(addrs, ln.Addr().String())
			}
			meshAddr[sn.name] = addrs[1]
			sn.cfg = c.config(sn, addrs[0], addrs[1], addrs[2])
			c.nodes[ns.Name] = sn
		}
	}
	ext, err := c.startSmarthosts()
	if err != nil {
		return err
	}
	for _, sn := range c.nodes {
		sn.cfg.Connectors = append(c.connectors(sn.rg, meshAddr), externalConnectors(t, sn.rg, ext)...)
	}
	// The first node of a group is its gossip seed; the others join it.
	for _, rg := range t.RoutingGroups {
		for _, ns := range rg.Nodes {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := c.boot(c.nodes[ns.Name]); err != nil {
				return err
			}
		}
	}
	return nil
}

// config is a node's configuration with the scenario's fast timers.
func (c *nodeCluster) config(sn *simNode, smtpAddr, meshAddr, lsAddr string) config.Config {
	tm := c.sc.Timers
	t := &c.sc.Topology
	cfg := config.Default()
	cfg.Node = config.Node{Name: sn.name, RoutingGroup: sn.rg, DataDir: filepath.Join(c.opts.DataDir, sn.name)}
	cfg.Listen = config.Listen{SMTP: smtpAddr, Mesh: meshAddr, Linkstate: lsAddr, Gossip: "127.0.0.1:0"}
	cfg.TLS = config.TLS{} // plaintext: the harness measures routing, not crypto
	cfg.LocalDomains = t.rg(sn.rg).Domains
	// The harness plays the organisation's own clients: they may relay.
	cfg.Relay.AllowNetworks = []string{"127.0.0.0/8"}
	cfg.Outbound.ConnectTimeout = time.Second
	cfg.Outbound.CommandTimeout = 5 * time.Second
	cfg.Outbound.DeadTime = tm.DeadTime
	cfg.Queue.Retry = queue.Backoff{Initial: tm.RetryInitial, Max: tm.RetryMax, Factor: 2, Jitter: 0.2}
	cfg.Queue.GCInterval = time.Minute
	// Shadow copies are checked often, so a lost disk shows within a scenario.
	cfg.Mesh.ShadowCheck = 200 * time.Millisecond
	cfg.Mesh.ShadowTimeout = 5 * time.Second
	if tm.Lifetime > 0 {
		cfg.Queue.Lifetime = tm.Lifetime
	}
	cfg.Log.Level = "warn"
	for _, rg := range t.RoutingGroups {
		for _, ns := range rg.Nodes {
			if ns.Name == sn.name {
				cfg.Mesh.Priority = ns.Priority
			}
		}
	}
	m := &cfg.Mesh
	m.OrgKey = orgKey
	// Mutual TLS between the nodes, as in production: one lab CA per run.
	orgDir := filepath.Join(c.opts.DataDir, "org")
	if caFile, certs, err := pki.Lab(orgDir, pki.Identity{Node: sn.name, RG: sn.rg}); err == nil {
		m.Identity = config.Identity{CAFiles: []string{caFile}, CertFile: certs[sn.name][0], KeyFile: certs[sn.name][1]}
		if k, err := os.ReadFile(filepath.Join(orgDir, pki.GossipKeyFile)); err == nil {
			m.GossipKey = strings.TrimSpace(string(k))
		}
	}
	for _, rg := range t.RoutingGroups {
		m.RoutingGroups = append(m.RoutingGroups, config.RoutingGroup{Name: rg.Name})
	}
	m.FastGossip = true
	m.CollectWindow = 100 * time.Millisecond
	m.SyncInterval = tm.SyncInterval
	if tm.TTL > 0 {
		m.TTL, m.Refresh = tm.TTL, tm.Refresh
	}
	m.Probe = mesh.ProbeConfig{Interval: tm.ProbeInterval, Keepalive: tm.ProbeKeepalive, Timeout: tm.ProbeTimeout,
		GlitchRetries: 2, GlitchDelay: 20 * time.Millisecond, UpAfter: 2}
	if tm.DampingPenalty > 0 {
		m.Damping.Penalty = float64(tm.DampingPenalty)
	}
	if tm.DampingSuppress > 0 {
		m.Damping.Suppress = float64(tm.DampingSuppress)
	}
	if tm.DampingReuse > 0 {
		m.Damping.Reuse = float64(tm.DampingReuse)
	}
	if tm.DampingHalfLife > 0 {
		m.Damping.HalfLife = tm.DampingHalfLife
	}
	return cfg
}

func (c *nodeCluster) connectors(rg string, meshAddr map[string]string) []mesh.Connector {
	t := &c.sc.Topology
	var out []mesh.Connector
	for i := range t.Connectors {
		k := &t.Connectors[i]
		if k.From != rg {
			continue
		}
		_, dst := t.ends(k)
		var targets []string
		for _, d := range dst {
			targets = append(targets, meshAddr[d])
		}
		out = append(out, mesh.Connector{Name: k.Name, To: k.To, Cost: k.Cost,
			SourceBridgeheads: k.SourceBridgeheads, Targets: targets})
	}
	return out
}

// seeds are the known gossip addresses of the other nodes of rg.
func (c *nodeCluster) seeds(sn *simNode) []string {
	var out []string
	for _, other := range c.sc.Topology.nodesOf(sn.rg) {
		if o := c.nodes[other]; o != sn && o.gossip != "" {
			out = append(out, o.gossip)
		}
	}
	return out
}

// boot starts one incarnation of a node. Caller must not hold c.mu.
func (c *nodeCluster) boot(sn *simNode) error {
	cfg := sn.cfg
	cfg.Mesh.Seeds = c.seeds(sn)
	if sn.gossip != "" {
		cfg.Listen.Gossip = sn.gossip
	}
	if sn.full {
		cfg.Queue.MaxMessages = 1
	}
	// A restart binds the node's fixed addresses again: one may be in
	// TIME_WAIT, or taken for a moment by another process's outgoing
	// connection on a loaded machine. That alone is retried, a bounded time.
	var n *node.Node
	deadline := time.Now().Add(bindRetry)
	for {
		var err error
		n, err = c.bootOnce(cfg, sn)
		if err == nil {
			break
		}
		if !addrInUse(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond) // a retry interval, not a wait for a condition
	}
	c.mu.Lock()
	sn.n, sn.m = n, n.Mesh()
	if sn.gossip == "" && sn.m != nil {
		sn.gossip = sn.m.GossipAddr()
	}
	c.mu.Unlock()
	return nil
}

// bindRetry bounds how long boot retries a bind that found its address in use.
const bindRetry = 10 * time.Second

// addrInUse reports a bind that failed on an address in use (memberlist
// reports it as text only).
func addrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// bootOnce builds, fills and starts one incarnation of sn.
func (c *nodeCluster) bootOnce(cfg config.Config, sn *simNode) (*node.Node, error) {
	n, err := node.New(cfg, c.nodeOptions(sn))
	if err != nil {
		return nil, fmt.Errorf("harness: start %s: %w", sn.name, err)
	}
	if err := c.ballast(n, sn); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.Start(); err != nil {
		n.Close()
		return nil, fmt.Errorf("harness: start %s: %w", sn.name, err)
	}
	return n, nil
}

// ballast fills or empties the queue before the node starts: a full disk
// is a queue bounded at one message that holds one held message, so every
// Enqueue fails with queue.ErrFull (451 4.3.0) while the mail already
// queued keeps being delivered.
func (c *nodeCluster) ballast(n *node.Node, sn *simNode) error {
	q := n.Queue()
	if !sn.full {
		if err := q.Delete(ballastID); err != nil && !errors.Is(err, queue.ErrNotFound) {
			return fmt.Errorf("harness: free disk of %s: %w", sn.name, err)
		}
		return nil
	}
	if _, err := q.Get(ballastID); err == nil {
		return nil
	}
	env := queue.Envelope{ID: ballastID, From: "", Rcpts: []queue.Rcpt{{Addr: "ballast@" + sn.cfg.LocalDomains[0]}},
		ReceivedAt: time.Now(), Source: "local"}
	if err := q.Enqueue(context.Background(), env, []byte("Subject: ballast\r\n\r\nfills the disk\r\n")); err != nil &&
		!errors.Is(err, queue.ErrFull) {
		return fmt.Errorf("harness: fill disk of %s: %w", sn.name, err)
	}
	if err := q.Hold(ballastID); err != nil && !errors.Is(err, queue.ErrNotFound) {
		return fmt.Errorf("harness: fill disk of %s: %w", sn.name, err)
	}
	return nil
}

func (c *nodeCluster) nodeOptions(sn *simNode) node.Options {
	dial := sn.host.DialContext
	if c.breaks(sn.name) {
		dial = c.brokenDial(sn, dial)
	}
	return node.Options{
		Logger: c.log.With("sim_node", sn.name),
		Dial:   dial,
		Listen: func(network, addr string) (net.Listener, error) {
			c.mu.Lock()
			ln, ok := sn.prebound[addr]
			delete(sn.prebound, addr)
			c.mu.Unlock()
			if ok {
				return ln, nil
			}
			return relisten(sn.host, network, addr)
		},
		GossipTransport: func(bind string) (memberlist.NodeAwareTransport, error) {
			return sn.host.GossipTransport(bind)
		},
	}
}

// relisten binds an address a previous incarnation used; the old
// listener's close may still be settling.
func relisten(h *netem.Host, network, addr string) (net.Listener, error) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		ln, err := h.Listen(network, addr)
		if err == nil || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *nodeCluster) breaks(name string) bool {
	for _, b := range c.opts.BreakForwarding {
		if b == name {
			return true
		}
	}
	return false
}

// brokenDial refuses, once armed, every connection to a node of another
// routing group: the node accepts mail and never hands it on.
func (c *nodeCluster) brokenDial(sn *simNode, dial func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if c.broken.Load() {
			if owner, ok := c.net.Owner(addr); ok {
				if rg, _ := c.sc.Topology.rgOf(owner); rg != sn.rg {
					return nil, fmt.Errorf("harness: %s: forwarding disabled", sn.name)
				}
			}
		}
		return dial(ctx, network, addr)
	}
}

// timelineStarted arms BreakForwarding: the broken node converged like
// the others and fails only from t=0.
func (c *nodeCluster) timelineStarted() { c.broken.Store(true) }

func (c *nodeCluster) Faults() Faults { return c.net }

func (c *nodeCluster) get(name string) (*simNode, error) {
	sn, ok := c.nodes[name]
	if !ok {
		return nil, fmt.Errorf("harness: unknown node %q", name)
	}
	return sn, nil
}

// take removes the running incarnation so that nobody reads it any more.
func (c *nodeCluster) take(name string) (*simNode, *node.Node, error) {
	sn, err := c.get(name)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := sn.n
	if n == nil {
		return nil, nil, fmt.Errorf("harness: node %s is not running", name)
	}
	if sn.m != nil {
		sn.orig += sn.m.Stats().Originated
	}
	sn.n, sn.m = nil, nil
	return sn, n, nil
}

func (c *nodeCluster) Crash(name string) error {
	sn, n, err := c.take(name)
	if err != nil {
		return err
	}
	c.net.Crash(sn.name)
	if err := n.Crash(); err != nil {
		c.log.Debug("crash", "node", name, "err", err)
	}
	return nil
}

func (c *nodeCluster) Restart(_ context.Context, name string) error {
	sn, err := c.get(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	running := sn.n != nil
	c.mu.Unlock()
	if running {
		return fmt.Errorf("harness: restart %s: still running", name)
	}
	c.net.Restart(sn.name)
	return c.boot(sn)
}

// SetDiskFull restarts the node gracefully with its queue full (or freed):
// the queue has no run-time bound to change, so this is the closest clean
// equivalent of a disk that fills up under a running node.
func (c *nodeCluster) SetDiskFull(_ context.Context, name string, full bool) error {
	sn, n, err := c.take(name)
	if err != nil {
		return err
	}
	if err := n.Close(); err != nil {
		c.log.Debug("close", "node", name, "err", err)
	}
	sn.full = full
	return c.boot(sn)
}

func (c *nodeCluster) Send(ctx context.Context, from string, m Mail) error {
	sn, err := c.get(from)
	if err != nil {
		return err
	}
	c.mu.Lock()
	addr := ""
	if sn.n != nil {
		addr = sn.n.SMTPAddr().String()
	} else {
		addr = sn.cfg.Listen.SMTP // crashed: the dial is refused
	}
	c.mu.Unlock()
	res, err := c.client.Send(ctx, addr, smtp.Outgoing{From: m.From, Rcpts: []smtp.Rcpt{{Addr: m.To}}, Body: m.Body})
	if err != nil {
		return err
	}
	if len(res) != 1 || res[0].Code != 250 {
		return fmt.Errorf("harness: send %s: %+v", m.MessageID, res)
	}
	return nil
}

func (c *nodeCluster) Delivered() (Deliveries, error) {
	d := Deliveries{Copies: map[string]int{}, Bounced: map[string]string{}, At: map[string]time.Time{}, External: map[string]int{}}
	roots := make([]string, 0, len(c.nodes)+len(c.smarthosts))
	for _, name := range c.sc.Topology.NodeNames() {
		roots = append(roots, filepath.Join(c.nodes[name].cfg.Node.DataDir, "maildir"))
	}
	for _, s := range c.smarthosts {
		roots = append(roots, s.root)
	}
	for _, root := range roots {
		if err := countMaildir(root, d); err != nil {
			return d, err
		}
	}
	for _, s := range c.smarthosts {
		ext := Deliveries{Copies: d.External, Bounced: map[string]string{}}
		if err := countMaildir(s.root, ext); err != nil {
			return d, err
		}
	}
	d.ReplyLost = map[string]int{}
	twice := false
	for _, n := range d.External {
		twice = twice || n > 1
	}
	if !twice {
		return d, nil // only a message twice out of the organisation needs the senders' word
	}
	for _, name := range c.sc.Topology.NodeNames() {
		if err := countReplyLost(filepath.Join(c.nodes[name].cfg.Node.DataDir, "track.log"), d.ReplyLost); err != nil {
			return d, err
		}
	}
	return d, nil
}

func (c *nodeCluster) live(name string) *mesh.Mesh {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sn, ok := c.nodes[name]; ok {
		return sn.m
	}
	return nil
}

func (c *nodeCluster) LSDB(name string) (LSDBInfo, bool) {
	m := c.live(name)
	if m == nil {
		return LSDBInfo{}, false
	}
	snap := m.LSDB().Snapshot()
	info := LSDBInfo{Digest: snap.Digest(), Records: len(snap.Records())}
	for _, r := range snap.All() {
		if r.Tombstone {
			info.Tombstones = append(info.Tombstones, r.RG)
		}
	}
	return info, true
}

func (c *nodeCluster) RemoveRG(name, rg string) error {
	m := c.live(name)
	if m == nil {
		return fmt.Errorf("harness: node %s is down", name)
	}
	_, err := m.RemoveRG(rg)
	return err
}

func (c *nodeCluster) Route(name, domain string) ([]string, error) {
	m := c.live(name)
	if m == nil {
		return nil, fmt.Errorf("harness: node %s is down", name)
	}
	tab := m.Routes()
	if tab == nil {
		return nil, fmt.Errorf("harness: node %s has no routing table yet", name)
	}
	d, err := tab.Route("harness-route-probe", domain)
	if err != nil {
		return nil, err
	}
	return d.Path, nil
}

func (c *nodeCluster) Originated(name string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	sn, ok := c.nodes[name]
	if !ok {
		return 0
	}
	n := sn.orig
	if sn.m != nil {
		n += sn.m.Stats().Originated
	}
	return n
}

func (c *nodeCluster) Close() error {
	var errs []error
	for _, name := range c.sc.Topology.NodeNames() {
		sn := c.nodes[name]
		if sn == nil {
			continue
		}
		c.mu.Lock()
		n := sn.n
		sn.n, sn.m = nil, nil
		for a, ln := range sn.prebound {
			ln.Close()
			delete(sn.prebound, a)
		}
		c.mu.Unlock()
		if n != nil {
			errs = append(errs, n.Close())
		}
	}
	c.client.Close()
	errs = append(errs, c.closeSmarthosts())
	errs = append(errs, c.net.Close())
	return errors.Join(errs...)
}

// Locate says where a message with this Message-ID sits in the queues of
// the live nodes, for the report of a lost message.
func (c *nodeCluster) Locate(messageID string) []string {
	var out []string
	mark := []byte("Message-ID: <" + messageID + ">")
	for _, name := range c.sc.Topology.NodeNames() {
		c.mu.Lock()
		n := c.nodes[name].n
		c.mu.Unlock()
		if n == nil {
			continue
		}
		q := n.Queue()
		msgs, err := q.List(queue.Filter{})
		if err != nil {
			continue
		}
		for _, m := range msgs {
			body, err := q.Body(m.ID)
			if err != nil || !bytes.Contains(body, mark) {
				continue
			}
			for _, r := range m.Recipients {
				out = append(out, fmt.Sprintf("queued on %s as %s: %s %v, %d attempts, next %s, last error %q",
					name, m.ID, r.Addr, r.State, r.Attempts, r.NextAttempt.Format("15:04:05.000"), r.LastError))
			}
		}
	}
	return out
}

// diskSwapper is a Cluster that can replace a crashed node's data directory.
type diskSwapper interface {
	SwapDisk(node string) error
}

// SwapDisk exchanges a crashed node's data directory with the one set aside
// by the previous swap (an empty one the first time).
func (c *nodeCluster) SwapDisk(name string) error {
	sn, err := c.get(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	running := sn.n != nil
	c.mu.Unlock()
	if running {
		return fmt.Errorf("harness: swap_disk %s: still running", name)
	}
	dir := sn.cfg.Node.DataDir
	aside, tmp := dir+".aside", dir+".swap"
	if err := os.Rename(dir, tmp); err != nil {
		return fmt.Errorf("harness: swap_disk %s: %w", name, err)
	}
	if err := os.Rename(aside, dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("harness: swap_disk %s: %w", name, err)
	}
	if err := os.Rename(tmp, aside); err != nil {
		return fmt.Errorf("harness: swap_disk %s: %w", name, err)
	}
	return nil
}

// drainer is a Cluster whose nodes can drain (docs/drain.md).
type drainer interface {
	SetDrain(node string, on bool) error
	// Drained reports whether the node drains and holds no mail, and
	// what it holds.
	Drained(node string) (bool, string)
}

// SetDrain drains the running node (on) or returns it to service, as
// meshctl node drain and undrain do.
func (c *nodeCluster) SetDrain(name string, on bool) error {
	sn, err := c.get(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	n := sn.n
	c.mu.Unlock()
	if n == nil {
		return fmt.Errorf("harness: drain %s: not running", name)
	}
	if on {
		return n.Drainer().Drain()
	}
	return n.Drainer().Undrain()
}

func (c *nodeCluster) Drained(name string) (bool, string) {
	sn, err := c.get(name)
	if err != nil {
		return false, err.Error()
	}
	c.mu.Lock()
	n := sn.n
	c.mu.Unlock()
	if n == nil {
		return false, name + " is not running"
	}
	st := n.Drainer().DrainStatus()
	return st.Done, fmt.Sprintf("%s: draining %v, %d queued, %d held, %d transactions in progress",
		name, st.Draining, st.Queued, st.Held, st.Transactions)
}
