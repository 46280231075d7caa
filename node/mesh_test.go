package node

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/meshd/meshd/harness/netem"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/pki"
	"github.com/meshd/meshd/queue"
)

// testMesh is a mesh of real nodes in one process on loopback, over an
// injected network that can cut links between them.
type testMesh struct {
	t     testing.TB
	nw    *netem.Network
	rgs   map[string][]string // rg -> node names
	links []meshLink
	cfgs  map[string]config.Config
	nodes map[string]*Node
	meshL map[string]string       // node -> mesh listener address (fixed for restarts)
	held  map[string]net.Listener // reservations of those addresses until first start
	seeds map[string]string       // rg -> gossip address of its first node
	// dialHook, when set (under mu), makes every dial of the nodes: node
	// dials addr, dial is the network's.
	dialHook func(node, addr string, dial func() (net.Conn, error)) (net.Conn, error)
	// queuedHook, when set (under mu), runs when a node has committed a
	// message, before its client hears the reply.
	queuedHook func(node, id string)
	mu         sync.Mutex
}

type meshLink struct {
	name, from, to string
	cost           uint32
}

var testOrgKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func newTestMesh(t testing.TB, rgs map[string][]string, links []meshLink) *testMesh {
	return newTestMeshWith(t, rgs, links, nil)
}

// newTestMeshWith is newTestMesh with mod applied to every node's
// configuration before the nodes start (mod may be nil).
func newTestMeshWith(t testing.TB, rgs map[string][]string, links []meshLink, mod func(*config.Config)) *testMesh {
	tm := &testMesh{t: t, nw: netem.New(netem.Options{Seed: 1}), rgs: rgs, links: links,
		cfgs: map[string]config.Config{}, nodes: map[string]*Node{}, meshL: map[string]string{}, seeds: map[string]string{},
		held: map[string]net.Listener{}}
	// Fix every mesh listener address first: connectors name them.
	for _, names := range rgs {
		for _, name := range names {
			l := reserveFixedPort(t)
			tm.meshL[name] = l.Addr().String()
			tm.held[name] = l
		}
	}
	orgDir := t.TempDir()
	var ids []pki.Identity
	for rg, names := range rgs {
		for _, name := range names {
			ids = append(ids, pki.Identity{Node: name, RG: rg})
		}
	}
	caFile, certs, err := pki.Lab(orgDir, ids...)
	if err != nil {
		t.Fatal(err)
	}
	gossipKey, err := os.ReadFile(filepath.Join(orgDir, pki.GossipKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, rg := range sortedRGs(rgs) {
		for _, name := range rgs[rg] {
			cfg := tm.config(name, rg)
			cfg.Mesh.Identity = config.Identity{CAFiles: []string{caFile}, CertFile: certs[name][0], KeyFile: certs[name][1]}
			cfg.Mesh.GossipKey = strings.TrimSpace(string(gossipKey))
			if mod != nil {
				mod(&cfg)
			}
			tm.cfgs[name] = cfg
		}
	}
	// Registered after the data directories, so it runs before they go.
	t.Cleanup(func() {
		for _, n := range tm.nodes {
			if n != nil {
				n.Close()
			}
		}
		tm.nw.Close()
	})
	for _, rg := range sortedRGs(rgs) {
		for _, name := range rgs[rg] {
			tm.start(name)
		}
	}
	return tm
}

func sortedRGs(rgs map[string][]string) []string {
	var out []string
	for rg := range rgs {
		out = append(out, rg)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func (tm *testMesh) config(name, rg string) config.Config {
	cfg := config.Default()
	cfg.Node.Name, cfg.Node.RoutingGroup, cfg.Node.DataDir = name, rg, tm.t.TempDir()
	cfg.Listen = config.Listen{SMTP: "127.0.0.1:0", Admin: "127.0.0.1:0", Linkstate: "127.0.0.1:0", Gossip: "127.0.0.1:0", Mesh: tm.meshL[name]}
	cfg.LocalDomains = []string{rg + ".test"}
	cfg.Queue.Retry = queue.Backoff{Initial: 200 * time.Millisecond, Max: time.Second, Factor: 2, Jitter: 0}
	cfg.Outbound.ConnectTimeout, cfg.Outbound.CommandTimeout, cfg.Outbound.DeadTime = 2*time.Second, 5*time.Second, 0
	cfg.Mesh.OrgKey = testOrgKey
	if v := os.Getenv("MESHD_BENCH_PERDEST"); v != "" {
		fmt.Sscan(v, &cfg.Mesh.MaxPerPeer)
	}
	cfg.Mesh.FastGossip = true
	cfg.Mesh.CollectWindow = 100 * time.Millisecond
	cfg.Mesh.SyncInterval = time.Second
	cfg.Mesh.Probe = mesh.ProbeConfig{Interval: 100 * time.Millisecond, Keepalive: 300 * time.Millisecond, Timeout: 500 * time.Millisecond,
		GlitchRetries: 2, GlitchDelay: 20 * time.Millisecond, UpAfter: 2}
	for r := range tm.rgs {
		cfg.Mesh.RoutingGroups = append(cfg.Mesh.RoutingGroups, config.RoutingGroup{Name: r})
	}
	for _, l := range tm.links {
		if l.from != rg {
			continue
		}
		var targets []string
		for _, n := range tm.rgs[l.to] {
			targets = append(targets, tm.meshL[n])
		}
		cfg.Connectors = append(cfg.Connectors, mesh.Connector{Name: l.name, To: l.to, Cost: l.cost, Targets: targets})
	}
	return cfg
}

// start (re)starts a node on its data directory.
func (tm *testMesh) start(name string) *Node {
	t := tm.t
	cfg := tm.cfgs[name]
	tm.mu.Lock()
	if s, ok := tm.seeds[cfg.Node.RoutingGroup]; ok {
		cfg.Mesh.Seeds = []string{s}
	}
	tm.mu.Unlock()
	h := tm.nw.Host(name)
	opts := Options{
		Logger: testLogger(t).With("test_node", name),
		Listen: h.Listen,
		Dial:   h.DialContext,
		GossipTransport: func(bind string) (memberlist.NodeAwareTransport, error) {
			return h.GossipTransport(bind)
		},
	}
	opts.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		tm.mu.Lock()
		hook := tm.dialHook
		tm.mu.Unlock()
		if hook == nil {
			return h.DialContext(ctx, network, addr)
		}
		return hook(name, addr, func() (net.Conn, error) { return h.DialContext(ctx, network, addr) })
	}
	opts.afterQueued = func(id string) {
		tm.mu.Lock()
		hook := tm.queuedHook
		tm.mu.Unlock()
		if hook != nil {
			hook(name, id)
		}
	}
	if l := tm.held[name]; l != nil {
		l.Close() // released only now, so no other test takes the port
		delete(tm.held, name)
	}
	var n *Node
	var err error
	// A restarted node may find a fixed port (its mesh listener, or what a
	// test fixed) in TIME_WAIT, or taken for a moment by another process's
	// outgoing connection on a loaded machine: New opens some listeners,
	// Start the gossip port.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err = New(cfg, opts)
		if err == nil {
			if err = n.Start(); err != nil {
				n.Close()
				err = fmt.Errorf("start: %w", err)
			}
		}
		if err == nil || time.Now().After(deadline) || (n != nil && !addrInUse(err)) {
			break
		}
		time.Sleep(50 * time.Millisecond) // a retry interval, not a wait for a condition
	}
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	tm.mu.Lock()
	if _, ok := tm.seeds[cfg.Node.RoutingGroup]; !ok {
		tm.seeds[cfg.Node.RoutingGroup] = n.Mesh().GossipAddr()
	}
	tm.nodes[name] = n
	tm.mu.Unlock()
	return n
}

// addrInUse reports a bind that failed on a port in use (memberlist
// reports it as text only).
func addrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// crash kills a node as kill -9 would look from outside.
func (tm *testMesh) crash(name string) {
	tm.nw.Crash(name)
	tm.mu.Lock()
	n := tm.nodes[name]
	tm.nodes[name] = nil
	tm.mu.Unlock()
	n.Crash()
	tm.nw.Restart(name) // its host may listen again when the node restarts
}

func (tm *testMesh) live() []*Node {
	var out []*Node
	for _, rg := range sortedRGs(tm.rgs) {
		for _, name := range tm.rgs[rg] {
			if n := tm.nodes[name]; n != nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// poll waits up to d for cond to return nil (testkit.Eventually).
func poll(t testing.TB, d time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	return testkit.Eventually(t, d, what, cond)
}

// converged: every live node holds one record per RG and the same digest.
func (tm *testMesh) converged() error {
	var first [32]byte
	for i, n := range tm.live() {
		snap := n.Mesh().LSDB().Snapshot()
		if got := len(snap.Records()); got != len(tm.rgs) {
			return fmt.Errorf("%s holds %d records, want %d", n.cfg.Node.Name, got, len(tm.rgs))
		}
		if i == 0 {
			first = snap.Digest()
		} else if snap.Digest() != first {
			return fmt.Errorf("%s has another digest", n.cfg.Node.Name)
		}
	}
	return nil
}

func (tm *testMesh) path(node, domain string) string {
	n := tm.nodes[node]
	if n == nil || n.Mesh().Routes() == nil {
		return ""
	}
	d, _ := n.Mesh().Routes().Route("x", domain)
	return strings.Join(d.Path, ">")
}

func (tm *testMesh) pathIs(node, domain, want string) func() error {
	return func() error {
		if got := tm.path(node, domain); got != want {
			return fmt.Errorf("%s -> %s via %q, want %q", node, domain, got, want)
		}
		return nil
	}
}

var msgIDRe = regexp.MustCompile(`(?mi)^Message-ID:\s*(\S+)`)

// delivered counts, per Message-ID, the copies in the Maildirs of rg's
// nodes (crashed ones included: their data directories stay).
func (tm *testMesh) delivered(rg string) map[string]int {
	out := map[string]int{}
	for _, name := range tm.rgs[rg] {
		root := filepath.Join(tm.cfgs[name].Node.DataDir, "maildir")
		filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() || !(strings.Contains(p, "/new/") || strings.Contains(p, "/cur/")) {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			if m := msgIDRe.FindSubmatch(b); m != nil {
				out[string(m[1])]++
			}
			return nil
		})
	}
	return out
}

func (tm *testMesh) sendTo(node, rcpt, msgID string) error {
	tm.mu.Lock()
	n := tm.nodes[node]
	tm.mu.Unlock()
	if n == nil {
		return fmt.Errorf("node %s is down", node)
	}
	body := fmt.Sprintf("From: s@sender.test\r\nTo: %s\r\nMessage-ID: %s\r\nSubject: mesh test\r\n\r\nhello\r\n", rcpt, msgID)
	return send(n.SMTPAddr(), "s@sender.test", []string{rcpt}, body)
}

func triangleMesh(t testing.TB) *testMesh {
	return newTestMesh(t,
		map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1", "b2"}, "rgc": {"c1", "c2"}},
		[]meshLink{
			{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10},
			{"bc", "rgb", "rgc", 10}, {"cb", "rgc", "rgb", 10},
			{"ac", "rga", "rgc", 50}, {"ca", "rgc", "rga", 50},
		})
}

func TestMeshDeliversAlongLeastCostPath(t *testing.T) {
	tm := triangleMesh(t)
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	// Members' observations reach their master over the port-691 channel
	// (TLS is on for the SMTP listeners, plaintext on the channel): every
	// connector lists the pairs of both its source nodes.
	poll(t, 10*time.Second, "pairs of both members in rga's record", func() error {
		r, _ := tm.nodes["b1"].Mesh().LSDB().Snapshot().Get("rga")
		if r == nil {
			return fmt.Errorf("no rga record")
		}
		for _, c := range r.Connectors {
			srcs := map[string]bool{}
			for _, p := range c.Pairs {
				srcs[p.Source] = true
			}
			if !srcs["a1"] || !srcs["a2"] {
				return fmt.Errorf("connector %s pairs from %v", c.ID, srcs)
			}
		}
		return nil
	})
	poll(t, 10*time.Second, "route", tm.pathIs("a2", "rgc.test", "rga>rgb>rgc"))
	if err := tm.sendTo("a2", "carol@rgc.test", "<m1@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, "delivery in rgc", func() error {
		if got := tm.delivered("rgc")["<m1@test>"]; got != 1 {
			return fmt.Errorf("%d copies", got)
		}
		return nil
	})
	// The copy crossed rgb: a node of rgb added its Received header.
	b := readOneMessage(t, tm, "rgc", "<m1@test>")
	if !strings.Contains(b, ".rgb.meshd.test") {
		t.Fatalf("message did not pass through rgb:\n%s", b)
	}
	if !strings.Contains(b, "X-Meshd-Trace: rga, rgb") {
		t.Fatalf("trace header missing:\n%s", b)
	}
	// Mail from the outside for a domain of the mesh is not relaying.
	if err := tm.sendTo("b1", "alice@rga.test", "<m2@test>"); err != nil {
		t.Fatalf("mail for an org domain refused at another RG: %v", err)
	}
	poll(t, 20*time.Second, "delivery in rga", func() error {
		if got := tm.delivered("rga")["<m2@test>"]; got != 1 {
			return fmt.Errorf("%d copies", got)
		}
		return nil
	})
}

func readOneMessage(t testing.TB, tm *testMesh, rg, id string) string {
	for _, name := range tm.rgs[rg] {
		root := filepath.Join(tm.cfgs[name].Node.DataDir, "maildir")
		var found string
		filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), id) {
					found = string(b)
				}
			}
			return nil
		})
		if found != "" {
			return found
		}
	}
	t.Fatalf("%s not found in %s", id, rg)
	return ""
}

func TestMeshCutConnectorReroutes(t *testing.T) {
	tm := triangleMesh(t)
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	poll(t, 10*time.Second, "route", tm.pathIs("a1", "rgc.test", "rga>rgb>rgc"))
	// Cut rga from rgb: connectors ab and ba fail their probes.
	for _, a := range tm.rgs["rga"] {
		for _, b := range tm.rgs["rgb"] {
			tm.nw.Cut(a, b)
		}
	}
	// Mail sent at once still takes the old route, fails its hop and
	// waits in a1's queue; the new table sends it the other way.
	if err := tm.sendTo("a1", "carol@rgc.test", "<queued1@test>"); err != nil {
		t.Fatal(err)
	}
	took := poll(t, 10*time.Second, "reroute", tm.pathIs("a1", "rgc.test", "rga>rgc"))
	t.Logf("a1 rerouted %v after the cut", took)
	if err := tm.sendTo("a1", "carol@rgc.test", "<cut1@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, "delivery via the direct connector", func() error {
		if got := tm.delivered("rgc")["<cut1@test>"]; got != 1 {
			return fmt.Errorf("%d copies", got)
		}
		return nil
	})
	poll(t, 20*time.Second, "queued message rerouted", func() error {
		if got := tm.delivered("rgc")["<queued1@test>"]; got != 1 {
			return fmt.Errorf("%d copies", got)
		}
		return nil
	})
	for _, id := range []string{"<cut1@test>", "<queued1@test>"} {
		if b := readOneMessage(t, tm, "rgc", id); strings.Contains(b, ".rgb.meshd.test") {
			t.Fatalf("%s went through rgb despite the cut:\n%s", id, b)
		}
	}
}

func TestMeshMasterCrashKeepsLSDBIdentical(t *testing.T) {
	tm := triangleMesh(t)
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	tm.crash("b1")
	poll(t, 15*time.Second, "b2 master", func() error {
		if !tm.nodes["b2"].Mesh().IsMaster() {
			return fmt.Errorf("b2 not master")
		}
		r, ok := tm.nodes["a1"].Mesh().LSDB().Snapshot().Get("rgb")
		if !ok || r.Master != "b2" {
			return fmt.Errorf("a1 holds rgb from %v", r)
		}
		return nil
	})
	poll(t, 15*time.Second, "identical LSDB", tm.converged)
	// Mail still crosses rgb.
	if err := tm.sendTo("a1", "carol@rgc.test", "<mc1@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, "delivery", func() error {
		if got := tm.delivered("rgc")["<mc1@test>"]; got != 1 {
			return fmt.Errorf("%d copies", got)
		}
		return nil
	})
}

func TestMeshPartitionHoldsMailUntilHeal(t *testing.T) {
	tm := triangleMesh(t)
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	var ra, others []string
	for rg, names := range tm.rgs {
		if rg == "rga" {
			ra = append(ra, names...)
		} else {
			others = append(others, names...)
		}
	}
	tm.nw.Partition(ra, others)
	poll(t, 10*time.Second, "rga sees no route", func() error {
		if p := tm.path("a1", "rgc.test"); p != "" {
			return fmt.Errorf("a1 still routes via %q", p)
		}
		return nil
	})
	if err := tm.sendTo("a1", "carol@rgc.test", "<part1@test>"); err != nil {
		t.Fatal(err)
	}
	// Held at a1 while partitioned.
	poll(t, 5*time.Second, "held in a1's queue", func() error {
		if s := tm.nodes["a1"].Queue().Stats(); s.Messages != 1 {
			return fmt.Errorf("a1 queue holds %d", s.Messages)
		}
		return nil
	})
	if got := tm.delivered("rgc")["<part1@test>"]; got != 0 {
		t.Fatalf("delivered across a partition: %d", got)
	}
	tm.nw.HealAll()
	took := poll(t, 30*time.Second, "delivery after heal", func() error {
		if got := tm.delivered("rgc")["<part1@test>"]; got != 1 {
			return fmt.Errorf("%d copies", got)
		}
		return nil
	})
	t.Logf("delivered %v after the partition healed", took)
}

func TestMeshBridgeheadCrashMidStreamExactlyOnce(t *testing.T) {
	tm := triangleMesh(t)
	tm.dumpQueuesOnFailure(t)
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	poll(t, 10*time.Second, "route", tm.pathIs("a1", "rgc.test", "rga>rgb>rgc"))
	const total = 60
	var mu sync.Mutex
	accepted := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += 3 {
				if ctx.Err() != nil {
					return
				}
				id := fmt.Sprintf("<s%d@test>", i)
				if err := tm.sendTo("a1", fmt.Sprintf("u%d@rgc.test", i%5), id); err == nil {
					mu.Lock()
					accepted[id] = true
					mu.Unlock()
				}
			}
		}()
	}
	// Kill a bridgehead of rgb in the middle of the stream, then bring it back.
	poll(t, 20*time.Second, "stream under way", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(accepted) < total/3 {
			return fmt.Errorf("%d accepted", len(accepted))
		}
		return nil
	})
	tm.crash("b1")
	wg.Wait()
	tm.start("b1")
	mu.Lock()
	n := len(accepted)
	mu.Unlock()
	if n < total*9/10 {
		t.Fatalf("only %d of %d messages accepted at a1", n, total)
	}
	poll(t, 60*time.Second, "every accepted message delivered", func() error {
		got := tm.delivered("rgc")
		for id := range accepted {
			if got[id] == 0 {
				return fmt.Errorf("%s not delivered (%d of %d so far)", id, len(got), n)
			}
		}
		return nil
	})
	for id, c := range tm.delivered("rgc") {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	t.Logf("%d accepted, all delivered exactly once", n)
}

// dumpQueuesOnFailure logs, when the test has failed, every live node's
// queue: each message with its Message-ID, trace and recipients' states,
// attempts, next attempt, last reply and doubt. A message an exactly-once
// test misses is then found where it is stuck.
func (tm *testMesh) dumpQueuesOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		now := time.Now()
		tm.mu.Lock()
		nodes := map[string]*Node{}
		for name, n := range tm.nodes {
			nodes[name] = n
		}
		tm.mu.Unlock()
		for _, rg := range sortedRGs(tm.rgs) {
			for _, name := range tm.rgs[rg] {
				n := nodes[name]
				if n == nil {
					t.Logf("queue %s: down", name)
					continue
				}
				ms, err := n.Queue().List(queue.Filter{})
				if err != nil {
					t.Logf("queue %s: %v", name, err)
					continue
				}
				t.Logf("queue %s: %d messages", name, len(ms))
				for _, m := range ms {
					t.Logf("  %s %s trace=%v held=%v received %v ago, next %v", m.ID, m.MessageID, m.Trace, m.Held,
						now.Sub(m.ReceivedAt).Round(time.Millisecond), m.NextAttempt.Sub(now).Round(time.Millisecond))
					for _, r := range m.Recipients {
						t.Logf("    %s state=%d attempts=%d next=%v last=%q handedOn=%v doubt=%+v", r.Addr, r.State, r.Attempts,
							r.NextAttempt.Sub(now).Round(time.Millisecond), r.LastReply, r.HandedOn, r.Doubt)
					}
				}
			}
		}
	})
}
