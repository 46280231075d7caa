package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/routing"
	msmtp "github.com/meshd/meshd/smtp"
	"github.com/meshd/meshd/smtp/xlink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLogger() *slog.Logger {
	if os.Getenv("MESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// tnode is one node of a test mesh: a Mesh plus a mesh-facing SMTP
// listener (go-smtp behind the X-LINK2STATE interposer).
type tnode struct {
	name, rg string
	mesh     *Mesh
	smtp     *msmtp.Server
	smtpAddr string
	lsAddr   string
}

type nullSink struct{}

func (nullSink) Accept(context.Context, *msmtp.Session, msmtp.Envelope, []byte) error { return nil }

type allowAll struct{}

func (allowAll) CheckRcpt(*msmtp.Session, string) error { return nil }

// topology of a test: RG names, node names per RG, and links.
type link struct {
	name, from, to string
	cost           uint32
}

type testMesh struct {
	t      testing.TB
	nodes  map[string]*tnode
	order  []string
	links  []link
	rgs    map[string][]string
	smtpOf map[string]string // node -> mesh smtp addr (reserved)
	lsL    map[string]net.Listener
	smtpL  map[string]net.Listener
	seeds  map[string]string // rg -> first node's gossip addr
	state  linkstate.StateConfig
	extra  map[string][]Connector
	mu     sync.Mutex
}

var orgKey = []byte("0123456789abcdef0123456789abcdef")

func newTestMesh(t testing.TB, rgs map[string][]string, links []link) *testMesh {
	return newTestMeshWith(t, rgs, links, nil)
}

// newTestMeshWith also gives routing groups extra connectors (external
// ones, say), configured as they are.
func newTestMeshWith(t testing.TB, rgs map[string][]string, links []link, extra map[string][]Connector) *testMesh {
	tm := &testMesh{t: t, nodes: map[string]*tnode{}, links: links, rgs: rgs, extra: extra,
		smtpOf: map[string]string{}, lsL: map[string]net.Listener{}, smtpL: map[string]net.Listener{}, seeds: map[string]string{}}
	// Reserve every listener first: connectors name target addresses.
	for _, rg := range sortedKeys(rgs) {
		for _, n := range rgs[rg] {
			tm.smtpL[n] = listen(t)
			tm.smtpOf[n] = tm.smtpL[n].Addr().String()
			tm.lsL[n] = listen(t)
			tm.order = append(tm.order, n)
		}
	}
	for _, rg := range sortedKeys(rgs) {
		for _, n := range rgs[rg] {
			tm.start(n, rg)
		}
	}
	t.Cleanup(func() {
		for _, n := range tm.order {
			if nd := tm.nodes[n]; nd != nil {
				nd.mesh.Close()
				nd.smtp.Close()
			}
		}
	})
	return tm
}

func listen(t testing.TB) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func sortedKeys(m map[string][]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func (tm *testMesh) keyring(rg string) *linkstate.Keyring {
	k := linkstate.NewKeyring()
	if err := k.SetOrgKey(orgKey); err != nil {
		tm.t.Fatal(err)
	}
	for r := range tm.rgs {
		if err := k.AddRG(r); err != nil {
			tm.t.Fatal(err)
		}
	}
	return k
}

func (tm *testMesh) start(name, rg string) *tnode {
	t := tm.t
	var conns []Connector
	for _, l := range tm.links {
		if l.from != rg {
			continue
		}
		var targets []string
		for _, n := range tm.rgs[l.to] {
			targets = append(targets, tm.smtpOf[n])
		}
		conns = append(conns, Connector{Name: l.name, To: l.to, Cost: l.cost, Targets: targets})
	}
	conns = append(conns, tm.extra[rg]...)
	if tm.smtpL[name] == nil { // restart: listeners were closed
		tm.smtpL[name] = mustListen(t, tm.smtpOf[name])
		tm.lsL[name] = listen(t)
	}
	m, err := New(Config{
		Node: name, RG: rg, MeshSMTP: tm.smtpOf[name], LinkState: tm.lsL[name],
		GossipBind: "127.0.0.1:0", Seeds: tm.seedList(rg), FastGossip: true,
		Connectors:  conns,
		LocalSpaces: []linkstate.AddressSpace{{Pattern: rg + ".test", Cost: 1}},
		Keyring:     tm.keyring(rg),
		State:       tm.state,
		Timers:      Timers{TTL: time.Hour, Refresh: 30 * time.Minute, CollectWindow: 100 * time.Millisecond, SyncInterval: 2 * time.Second},
		Probe:       ProbeConfig{Interval: 100 * time.Millisecond, Keepalive: 200 * time.Millisecond, Timeout: 300 * time.Millisecond, GlitchRetries: 2, GlitchDelay: 20 * time.Millisecond, UpAfter: 2},
		Logger:      testLogger().With("test_node", name),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := msmtp.NewServer(msmtp.ServerConfig{
		Hostname: name, Listener: xlink.Listen(tm.smtpL[name], xlink.Config{Hostname: name, Store: m.Store(),
			Allow: func(net.Addr, *tlsState) bool { return true }}),
		Mesh: true, Policy: allowAll{}, Sink: nullSink{}, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	tm.mu.Lock()
	if _, ok := tm.seeds[rg]; !ok {
		tm.seeds[rg] = m.GossipAddr()
	}
	tm.mu.Unlock()
	nd := &tnode{name: name, rg: rg, mesh: m, smtp: srv, smtpAddr: tm.smtpOf[name], lsAddr: tm.lsL[name].Addr().String()}
	tm.nodes[name] = nd
	return nd
}

func mustListen(t testing.TB, addr string) net.Listener {
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("relisten %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tm *testMesh) seedList(rg string) []string {
	// A restarted node joins through a live member: the first node's
	// address may be its own dead one.
	for _, n := range tm.rgs[rg] {
		if nd := tm.nodes[n]; nd != nil {
			return []string{nd.mesh.GossipAddr()}
		}
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if s, ok := tm.seeds[rg]; ok {
		return []string{s}
	}
	return nil
}

// crash kills a node without a word to anyone.
func (tm *testMesh) crash(name string) {
	nd := tm.nodes[name]
	nd.mesh.Crash()
	nd.smtp.Close()
	tm.nodes[name] = nil
	tm.smtpL[name] = nil
}

func (tm *testMesh) live() []*tnode {
	var out []*tnode
	for _, n := range tm.order {
		if nd := tm.nodes[n]; nd != nil {
			out = append(out, nd)
		}
	}
	return out
}

// converged: every live node holds n records and the same digest.
func (tm *testMesh) converged(n int) func() error {
	return func() error {
		var first [32]byte
		for i, nd := range tm.live() {
			snap := nd.mesh.LSDB().Snapshot()
			if got := len(snap.Records()); got != n {
				return fmt.Errorf("%s holds %d records, want %d", nd.name, got, n)
			}
			if i == 0 {
				first = snap.Digest()
			} else if snap.Digest() != first {
				return fmt.Errorf("%s digest differs", nd.name)
			}
		}
		return nil
	}
}

func routeOf(nd *tnode, domain string) (routing.Decision, error) {
	tab := nd.mesh.Routes()
	if tab == nil {
		return routing.Decision{}, fmt.Errorf("no table")
	}
	return tab.Route("msg-1", domain)
}

// pathIs checks the RG path from a node to a domain.
func pathIs(nd *tnode, domain string, want ...string) func() error {
	return func() error {
		d, err := routeOf(nd, domain)
		if err != nil {
			return err
		}
		if strings.Join(d.Path, ">") != strings.Join(want, ">") {
			return fmt.Errorf("%s -> %s: path %v (cost %d), want %v", nd.name, domain, d.Path, d.TotalCost, want)
		}
		return nil
	}
}

// Three groups of two nodes: a-b cheap, b-c cheap, a-c expensive.
func triangle(t testing.TB) *testMesh {
	return newTestMesh(t,
		map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1", "b2"}, "rgc": {"c1", "c2"}},
		[]link{
			{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10},
			{"bc", "rgb", "rgc", 10}, {"cb", "rgc", "rgb", 10},
			{"ac", "rga", "rgc", 50}, {"ca", "rgc", "rga", 50},
		})
}

func TestMeshConvergesAndRoutesLeastCost(t *testing.T) {
	tm := triangle(t)
	took := testkit.Eventually(t, 15*time.Second, "LSDB convergence", tm.converged(3))
	t.Logf("converged in %v", took)
	for _, nd := range tm.live() {
		if nd.rg == "rga" {
			testkit.Eventually(t, 5*time.Second, "least-cost path", pathIs(nd, "rgc.test", "rga", "rgb", "rgc"))
		}
	}
	// Masters: the first by name in each group.
	for _, nd := range tm.live() {
		want := nd.rg[2:] + "1"
		if got := nd.mesh.View().Master; got != want {
			t.Errorf("%s sees master %s, want %s", nd.name, got, want)
		}
	}
	d, _ := routeOf(tm.nodes["a2"], "rgc.test")
	t.Logf("trace a2 -> rgc.test:\n%s", d.String())
}

func TestCutConnectorReroutes(t *testing.T) {
	tm := triangle(t)
	testkit.Eventually(t, 15*time.Second, "LSDB convergence", tm.converged(3))
	a1 := tm.nodes["a1"]
	testkit.Eventually(t, 5*time.Second, "initial path", pathIs(a1, "rgc.test", "rga", "rgb", "rgc"))
	// rgb's bridgeheads die: the connectors to them fail their probes.
	tm.crash("b1")
	tm.crash("b2")
	took := testkit.Eventually(t, 10*time.Second, "reroute around rgb", pathIs(a1, "rgc.test", "rga", "rgc"))
	t.Logf("rerouted in %v after both bridgeheads of rgb died", took)
	testkit.Eventually(t, 5*time.Second, "reroute at a2", pathIs(tm.nodes["a2"], "rgc.test", "rga", "rgc"))
}

func TestMasterFailoverKeepsLSDBIdentical(t *testing.T) {
	tm := triangle(t)
	testkit.Eventually(t, 15*time.Second, "LSDB convergence", tm.converged(3))
	before, _ := tm.nodes["a2"].mesh.LSDB().Snapshot().Get("rga")
	tm.crash("a1")
	testkit.Eventually(t, 10*time.Second, "a2 becomes master", func() error {
		if !tm.nodes["a2"].mesh.IsMaster() {
			return fmt.Errorf("a2 is not master")
		}
		return nil
	})
	testkit.Eventually(t, 10*time.Second, "new epoch everywhere", func() error {
		for _, nd := range tm.live() {
			r, ok := nd.mesh.LSDB().Snapshot().Get("rga")
			if !ok || r.Master != "a2" || r.Version.Epoch <= before.Version.Epoch {
				return fmt.Errorf("%s holds rga %+v", nd.name, r)
			}
		}
		return nil
	})
	testkit.Eventually(t, 10*time.Second, "identical LSDB", tm.converged(3))
	// The old master comes back: it ranks first again, takes over with a
	// newer epoch, and everyone agrees once more.
	tm.start("a1", "rga")
	testkit.Eventually(t, 15*time.Second, "a1 master again", func() error {
		for _, nd := range tm.live() {
			r, ok := nd.mesh.LSDB().Snapshot().Get("rga")
			if !ok || r.Master != "a1" {
				return fmt.Errorf("%s holds rga from %v", nd.name, r)
			}
		}
		return nil
	})
	testkit.Eventually(t, 10*time.Second, "identical LSDB after rejoin", tm.converged(3))
}

func TestConnectorAdminDownAndDrain(t *testing.T) {
	tm := triangle(t)
	testkit.Eventually(t, 15*time.Second, "LSDB convergence", tm.converged(3))
	a1 := tm.nodes["a1"]
	testkit.Eventually(t, 5*time.Second, "initial path", pathIs(a1, "rgc.test", "rga", "rgb", "rgc"))
	// Through a member: the master applies it.
	testkit.Eventually(t, 5*time.Second, "override accepted", func() error {
		return tm.nodes["a2"].mesh.SetConnectorAdmin("ab", channel.AdminDown)
	})
	testkit.Eventually(t, 5*time.Second, "ab down everywhere", func() error {
		for _, nd := range tm.live() {
			r, ok := nd.mesh.LSDB().Snapshot().Get("rga")
			if !ok || findConnector(r, "ab") == nil || findConnector(r, "ab").Up() {
				return fmt.Errorf("%s still holds ab up", nd.name)
			}
		}
		return nil
	})
	testkit.Eventually(t, 5*time.Second, "a avoids ab", pathIs(a1, "rgc.test", "rga", "rgc"))
	if err := a1.mesh.SetConnectorAdmin("nope", channel.AdminDown); !errors.Is(err, ErrUnknownConnector) {
		t.Fatalf("unknown connector: %v", err)
	}
	if err := a1.mesh.SetConnectorAdmin("ab", channel.AdminAuto); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "ab back", pathIs(a1, "rgc.test", "rga", "rgb", "rgc"))
	// Drain: ab costs 100 now, so a->c (50) wins; b->a still uses ba.
	if err := a1.mesh.SetConnectorAdmin("ab", channel.AdminDrain); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "drained", pathIs(a1, "rgc.test", "rga", "rgc"))
}
