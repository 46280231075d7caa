package mesh

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/routing"
)

// pairWatch collects every record of one routing group a node installs.
type recordLog struct {
	mu   sync.Mutex
	recs []*linkstate.Record
	stop chan struct{}
	done chan struct{}
}

func watchRecords(nd *tnode, rg string) *recordLog {
	l := &recordLog{stop: make(chan struct{}), done: make(chan struct{})}
	sub := nd.mesh.LSDB().Subscribe()
	go func() {
		defer close(l.done)
		defer sub.Close()
		var last *linkstate.Record
		for {
			select {
			case <-l.stop:
				return
			case <-sub.C():
				sub.Changes()
				if r, ok := nd.mesh.LSDB().Snapshot().Get(rg); ok && r != last {
					last = r
					l.mu.Lock()
					l.recs = append(l.recs, r)
					l.mu.Unlock()
				}
			}
		}
	}()
	return l
}

func (l *recordLog) close() []*linkstate.Record {
	close(l.stop)
	<-l.done
	return l.recs
}

// TestMasterCrashKeepsPairs: across a kill of the master, the new
// master's records and, after failback, the old master's again never
// drop a bridgehead pair that was advertised while its source bridgehead
// stays a member: the pair states carry over into the first record.
func TestMasterCrashKeepsPairs(t *testing.T) {
	tm := newTestMesh(t, map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1", "b2"}},
		[]link{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}})
	testkit.Eventually(t, 15*time.Second, "LSDB convergence", tm.converged(2))
	b1 := tm.nodes["b1"]
	allPairs := func(members ...string) func() error {
		return func() error {
			r, ok := b1.mesh.LSDB().Snapshot().Get("rga")
			if !ok {
				return errors.New("no rga record")
			}
			for _, m := range members {
				for _, b := range []string{tm.smtpOf["b1"], tm.smtpOf["b2"]} {
					if !hasPair(r, "ab", m, b) {
						return fmt.Errorf("rga %v lacks pair %s->%s", r.Version, m, b)
					}
				}
			}
			return nil
		}
	}
	testkit.Eventually(t, 10*time.Second, "every pair advertised", allPairs("a1", "a2"))
	log := watchRecords(b1, "rga")
	tm.crash("a1")
	testkit.Eventually(t, 10*time.Second, "a2 master, its pairs advertised", func() error {
		if r, ok := b1.mesh.LSDB().Snapshot().Get("rga"); !ok || r.Master != "a2" {
			return errors.New("a2 not advertising yet")
		}
		return allPairs("a2")()
	})
	tm.start("a1", "rga")
	testkit.Eventually(t, 15*time.Second, "a1 master again with both pairs", func() error {
		if r, ok := b1.mesh.LSDB().Snapshot().Get("rga"); !ok || r.Master != "a1" {
			return errors.New("a1 not advertising yet")
		}
		return allPairs("a1", "a2")()
	})
	recs := log.close()
	if len(recs) < 2 {
		t.Fatalf("only %d rga records seen", len(recs))
	}
	// Invariant: once a pair was advertised, every later record that lists
	// its source as a member lists the pair too (a source that leaves the
	// group starts afresh when it returns).
	seen := map[[2]string]bool{}
	for _, r := range recs {
		members := map[string]bool{}
		for _, m := range r.Members {
			members[m.Name] = true
		}
		for k := range seen {
			if !members[k[0]] {
				delete(seen, k)
			} else if !hasPair(r, "ab", k[0], k[1]) {
				t.Errorf("rga %v (master %s) drops pair %s->%s of a live member", r.Version, r.Master, k[0], k[1])
			}
		}
		for _, c := range r.Connectors {
			for _, p := range c.Pairs {
				if members[p.Source] {
					seen[[2]string{p.Source, p.Target}] = true
				}
			}
		}
	}
	t.Logf("%d rga records checked across crash and failback", len(recs))
}

func hasPair(r *linkstate.Record, conn, src, dst string) bool {
	for _, c := range r.Connectors {
		if c.ID != conn {
			continue
		}
		for _, p := range c.Pairs {
			if p.Source == src && p.Target == dst {
				return true
			}
		}
	}
	return false
}

// TestConnectorWithDeadSourcesIsDown: an external connector whose only
// source bridgehead dies is advertised down, with its pair down, at once
// (not "up" because its pairs are gone), and routes no longer use it.
func TestConnectorWithDeadSourcesIsDown(t *testing.T) {
	smart, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer smart.Close()
	go acceptGreeting(smart)
	mesh := newTestMeshWith(t, map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1"}},
		[]link{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}},
		map[string][]Connector{"rga": {{Name: "out", Cost: 1, SourceBridgeheads: []string{"a2"}, Smarthost: smart.Addr().String(),
			AddressSpaces: []linkstate.AddressSpace{{Pattern: "*", Cost: 1}}}}})
	testkit.Eventually(t, 15*time.Second, "LSDB convergence", mesh.converged(2))
	b1 := mesh.nodes["b1"]
	exit := func() (*linkstate.Connector, error) {
		r, ok := b1.mesh.LSDB().Snapshot().Get("rga")
		if !ok {
			return nil, errors.New("no rga record")
		}
		for i := range r.Connectors {
			if r.Connectors[i].ID == "out" {
				return &r.Connectors[i], nil
			}
		}
		return nil, errors.New("no connector out")
	}
	testkit.Eventually(t, 10*time.Second, "out up", func() error {
		c, err := exit()
		if err != nil || !c.Up() {
			return fmt.Errorf("out: %+v %v", c, err)
		}
		return nil
	})
	mesh.crash("a2")
	testkit.Eventually(t, 10*time.Second, "out down once a2 is gone", func() error {
		c, err := exit()
		if err != nil {
			return err
		}
		if c.Up() || !hasPair(&linkstate.Record{Connectors: []linkstate.Connector{*c}}, "out", "a2", smart.Addr().String()) {
			return fmt.Errorf("out still shown up or without its pair: %+v", *c)
		}
		return nil
	})
	testkit.Eventually(t, 5*time.Second, "b1 routes the internet nowhere", func() error {
		d, err := routeOf(b1, "example.net")
		if !errors.Is(err, routing.ErrNoRoute) {
			return fmt.Errorf("route %v %v", d.Kind, err)
		}
		return nil
	})
}

// TestDecommissionFloodsTombstone: a routing group removed through a
// node of another group: the tombstone reaches every node within one sync
// interval, routing to the group stops with ErrRemoved, a late old copy
// of its record is refused, and the group's own node, coming back,
// learns the tombstone and cannot resurrect the group.
func TestDecommissionFloodsTombstone(t *testing.T) {
	tm := triangle(t)
	testkit.Eventually(t, 15*time.Second, "LSDB convergence", tm.converged(3))
	old, ok := tm.nodes["c1"].mesh.LSDB().Snapshot().Encoded("rgb")
	if !ok {
		t.Fatal("no rgb record")
	}
	tm.crash("b1")
	tm.crash("b2")
	start := time.Now()
	tomb, err := tm.nodes["a1"].mesh.RemoveRG("rgb")
	if err != nil {
		t.Fatal(err)
	}
	took := testkit.Eventually(t, 2*time.Second, "tombstone on every live node within one sync interval (2s)", func() error {
		for _, nd := range tm.live() {
			r, ok := nd.mesh.LSDB().Snapshot().Lookup("rgb")
			if !ok || !r.Tombstone || r.Version != tomb.Version {
				return fmt.Errorf("%s holds %+v", nd.name, r)
			}
		}
		return nil
	})
	t.Logf("tombstone everywhere %v after rg remove", time.Since(start).Round(time.Millisecond))
	t.Logf("(took %v)", took)
	for _, nd := range tm.live() {
		testkit.Eventually(t, 2*time.Second, nd.name+" refuses rgb.test as removed", func() error {
			if _, err := routeOf(nd, "rgb.test"); !errors.Is(err, routing.ErrRemoved) {
				return fmt.Errorf("route: %v", err)
			}
			return nil
		})
	}
	c1 := tm.nodes["c1"]
	if ok, err := c1.mesh.LSDB().InstallEncoded(old); ok || !errors.Is(err, linkstate.ErrStale) {
		t.Fatalf("late old copy of rgb's record: installed %v, err %v; want ErrStale", ok, err)
	}
	// b1 comes back with an empty LSDB: it learns the tombstone from its
	// peers' sessions and originates nothing.
	tm.start("b1", "rgb")
	testkit.Eventually(t, 10*time.Second, "b1 learns the tombstone", func() error {
		r, ok := tm.nodes["b1"].mesh.LSDB().Snapshot().Lookup("rgb")
		if !ok || !r.Tombstone {
			return fmt.Errorf("b1 holds %+v", r)
		}
		return nil
	})
	for _, nd := range tm.live() {
		if r, _ := nd.mesh.LSDB().Snapshot().Lookup("rgb"); r == nil || !r.Tombstone {
			t.Errorf("%s: rgb came back: %+v", nd.name, r)
		}
	}
}

// acceptGreeting plays a smarthost for probes: 220, then close.
func acceptGreeting(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("220 smarthost.test ESMTP\r\n"))
		c.Close()
	}
}

// TestRemoveOwnGroup: removed through its own master while it is alive,
// a group stays removed: its master originates nothing above the
// tombstone, whatever asks it to.
func TestRemoveOwnGroup(t *testing.T) {
	tm := triangle(t)
	testkit.Eventually(t, 15*time.Second, "LSDB convergence", tm.converged(3))
	b1 := tm.nodes["b1"]
	if !b1.mesh.IsMaster() {
		t.Fatal("b1 is not rgb's master")
	}
	tomb, err := b1.mesh.RemoveRG("rgb")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 2*time.Second, "tombstone everywhere", func() error {
		for _, nd := range tm.live() {
			if r, ok := nd.mesh.LSDB().Snapshot().Lookup("rgb"); !ok || !r.Tombstone {
				return fmt.Errorf("%s holds %+v", nd.name, r)
			}
		}
		return nil
	})
	before := b1.mesh.Stats().Originated
	b1.mesh.setAdmin("ba", channel.AdminDown) // an operator change would make a new record
	for range 3 {
		b1.mesh.originate()
	}
	if got := b1.mesh.Stats().Originated; got != before {
		t.Fatalf("a removed group's master originated %d records", got-before)
	}
	if r, _ := b1.mesh.LSDB().Snapshot().Lookup("rgb"); r == nil || !r.Tombstone || r.Version != tomb.Version {
		t.Fatalf("rgb is back: %+v", r)
	}
	if again, err := tm.nodes["a1"].mesh.RemoveRG("rgb"); err != nil || again.Version != tomb.Version {
		t.Fatalf("removing it again: %v %v, want the same tombstone", again, err)
	}
}

// TestRemoveRGNeedsItsKey: a group signed with Ed25519 cannot be removed
// by a node that does not hold its key (ErrCannotSign), nor can a group
// outside the configuration (ErrUnknownRG).
func TestRemoveRGNeedsItsKey(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	kr := linkstate.NewKeyring()
	for _, rg := range []string{"rga", "rgb"} {
		if err := kr.AddRG(rg); err != nil {
			t.Fatal(err)
		}
	}
	if err := kr.SetOrgKey(orgKey); err != nil {
		t.Fatal(err)
	}
	if err := kr.AddPublicKey("rgb", "k1", pub); err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	defer ln.Close()
	m, err := New(Config{Node: "a1", RG: "rga", LinkState: ln, Keyring: kr, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RemoveRG("rgb"); !errors.Is(err, ErrCannotSign) {
		t.Errorf("remove an Ed25519 group without its key: %v, want ErrCannotSign", err)
	}
	if _, err := m.RemoveRG("rgz"); !errors.Is(err, ErrUnknownRG) {
		t.Errorf("remove an unknown group: %v, want ErrUnknownRG", err)
	}
	if _, err := m.RemoveRG("rga"); err != nil {
		t.Errorf("remove an org-key group: %v", err)
	}
}
