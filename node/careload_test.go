package node

import (
	"crypto/tls"
	"fmt"
	"net/smtp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/pki"
)

// caReloadMesh is rga {a1, a2} and rgb {b1}, where a2's certificate is
// issued by a second CA that every node trusts besides the first. a1 is
// rga's master (priority). rga reaches rgb by connector ab (cost 10,
// source bridgehead a2 only) and ab1 (cost 20, a1 only): mail from a1 to
// rgb crosses a2 while a2 counts at a1.
func caReloadMesh(t *testing.T) (tm *testMesh, ca1 string) {
	var once sync.Once
	var dir2, ca2 string
	tm = newTestMeshWith(t, map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ab1", "rga", "rgb", 20}, {"ba", "rgb", "rga", 10}},
		func(c *config.Config) {
			once.Do(func() {
				dir2 = t.TempDir()
				var err error
				if ca2, err = pki.Init(pki.InitOptions{Dir: dir2, Name: "second CA"}); err != nil {
					t.Fatal(err)
				}
			})
			ca1 = c.Mesh.Identity.CAFiles[0]
			c.Mesh.Identity.CAFiles = []string{ca1, ca2}
			for i := range c.Connectors {
				switch c.Connectors[i].Name {
				case "ab":
					c.Connectors[i].SourceBridgeheads = []string{"a2"}
				case "ab1":
					c.Connectors[i].SourceBridgeheads = []string{"a1"}
				}
			}
			switch c.Node.Name {
			case "a1":
				c.Mesh.Priority = 100
			case "a2":
				cert, key, err := pki.Issue(pki.IssueOptions{Dir: dir2, Node: "a2", RG: "rga", Out: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				c.Mesh.Identity.CertFile, c.Mesh.Identity.KeyFile = cert, key
			}
		})
	return tm, ca1
}

// TestReloadWithoutCADropsLiveMember plays the operator who stops trusting
// a CA (retired, or its key stolen) while a node holding a certificate of
// it is a live member: a1 is reloaded with only the first CA in
// mesh.identity.ca_files. a2, whose certificate the second CA issued,
// is dropped at once from a1's gossip view and from its port-691 member
// sessions, counted under meshd_mesh_peers_dropped_total with reason
// ca_changed; mail a1 sent before the reload crossed a2, mail after it
// no longer does, and both are delivered exactly once. An intruder with
// a2's certificate and key holds an SMTP session to a1's mesh listener
// (Go's net/smtp) opened before the reload, relaying as a mesh peer: its
// next message after the reload gets 421 and goes nowhere.
func TestReloadWithoutCADropsLiveMember(t *testing.T) {
	tm, ca1 := caReloadMesh(t)
	tm.dumpQueuesOnFailure(t)
	a1 := tm.nodes["a1"]
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	poll(t, 20*time.Second, "a1 master, a2 counted and holding a port-691 session at a1", func() error {
		v := a1.Mesh().View()
		if v.Master != "a1" {
			return fmt.Errorf("master %q", v.Master)
		}
		if _, ok := v.Member("a2"); !ok {
			return fmt.Errorf("a1 does not count a2: %+v", v)
		}
		if s := a1.Mesh().ChannelMembers(); !slices.Contains(s, "a2") {
			return fmt.Errorf("a1's member sessions: %v", s)
		}
		return nil
	})
	nextHop := func() string {
		if a1.Mesh().Routes() == nil {
			return ""
		}
		d, _ := a1.Mesh().Routes().Route("x", "rgb.test")
		if len(d.NextHops) == 0 {
			return ""
		}
		return d.NextHops[0].Node
	}
	poll(t, 20*time.Second, "a1 routes rgb through a2", func() error {
		if h := nextHop(); h != "a2" {
			return fmt.Errorf("next hop %q", h)
		}
		return nil
	})
	viaA2 := func(id string) bool {
		return strings.Contains(readOneMessage(t, tm, "rgb", id), "by a2.rga.meshd.test")
	}
	once := func(ids ...string) func() error {
		return func() error {
			got := tm.delivered("rgb")
			for _, id := range ids {
				if got[id] != 1 {
					return fmt.Errorf("%s delivered %d times", id, got[id])
				}
			}
			return nil
		}
	}
	if err := tm.sendTo("a1", "bob@rgb.test", "<ca-before@test>"); err != nil {
		t.Fatal(err)
	}
	// The intruder's session, as a2 (a mesh peer may relay).
	a2id := tm.cfgs["a2"].Mesh.Identity
	a2cert, err := tls.LoadX509KeyPair(a2id.CertFile, a2id.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	held, err := smtp.Dial(a1.MeshAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := held.Hello("a2.rga.meshd.test"); err != nil {
		t.Fatal(err)
	}
	if err := held.StartTLS(&tls.Config{Certificates: []tls.Certificate{a2cert}, InsecureSkipVerify: true}); err != nil { //nolint:gosec // the intruder checks nothing
		t.Fatal(err)
	}
	relay := func(c *smtp.Client, id string) error {
		if err := c.Mail("x@rga.test"); err != nil {
			return err
		}
		if err := c.Rcpt("bob@rgb.test"); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "From: x@rga.test\r\nTo: bob@rgb.test\r\nMessage-ID: %s\r\nSubject: held\r\n\r\nrelayed\r\n", id)
		return w.Close()
	}
	if err := relay(held, "<ca-held-before@test>"); err != nil {
		t.Fatalf("a2's session before the reload: %v", err)
	}
	poll(t, 30*time.Second, "mail before the reload delivered", once("<ca-before@test>", "<ca-held-before@test>"))
	if !viaA2("<ca-before@test>") {
		t.Fatalf("mail before the reload did not cross a2: the test proves nothing:\n%s", readOneMessage(t, tm, "rgb", "<ca-before@test>"))
	}

	// A bundle that does not trust a1's own certificate is refused whole.
	cfg := tm.cfgs["a1"]
	cfg.Mesh.Identity.CAFiles = []string{tm.cfgs["a1"].Mesh.Identity.CAFiles[1]}
	if _, err := a1.Reload(cfg); err == nil || !strings.Contains(err.Error(), "mesh.identity.ca_files") {
		t.Fatalf("reload with a bundle that does not trust a1 itself: %v, want an error naming mesh.identity.ca_files", err)
	}
	if _, ok := a1.Mesh().View().Member("a2"); !ok {
		t.Fatal("a refused reload dropped a2")
	}
	cfg.Mesh.Identity.CAFiles = []string{ca1}
	rep, err := a1.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Applied, "mesh.identity.ca_files") || slices.ContainsFunc(rep.NeedsRestart, func(k string) bool { return strings.HasPrefix(k, "mesh") }) {
		t.Fatalf("reload report %+v: want mesh.identity.ca_files applied", rep)
	}
	took := poll(t, 15*time.Second, "a2 dropped from a1's view and member sessions", func() error {
		v := a1.Mesh().View()
		if _, ok := v.Member("a2"); ok {
			return fmt.Errorf("a1 still counts a2")
		}
		if s := a1.Mesh().ChannelMembers(); slices.Contains(s, "a2") {
			return fmt.Errorf("a2 still holds a port-691 session at a1: %v", s)
		}
		return nil
	})
	t.Logf("a2 dropped %v after the reload", took)
	poll(t, 10*time.Second, "drops counted with reason ca_changed", func() error {
		m := metricsText(t, a1)
		for _, want := range []string{
			`meshd_mesh_peers_dropped_total{channel="channel",reason="ca_changed"} 1`,
			`meshd_mesh_peers_dropped_total{channel="member",reason="ca_changed"} 1`,
		} {
			if !strings.Contains(m, want) {
				return fmt.Errorf("metrics lack %s:\n%s", want, grepLines(m, "dropped"))
			}
		}
		return nil
	})
	poll(t, 10*time.Second, "rga's record without a2", func() error {
		r, ok := a1.Mesh().LSDB().Snapshot().Get("rga")
		if !ok {
			return fmt.Errorf("no rga record")
		}
		for _, mb := range r.Members {
			if mb.Name == "a2" {
				return fmt.Errorf("rga's record lists a2")
			}
		}
		return nil
	})
	err = relay(held, "<ca-held-after@test>")
	if err == nil || !strings.Contains(err.Error(), "421") {
		t.Fatalf("a2's session from before the reload relayed again (err %v), want 421", err)
	}
	if err := tm.sendTo("a1", "bob@rgb.test", "<ca-after@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "mail before and after the reload delivered once", once("<ca-before@test>", "<ca-after@test>"))
	if n := tm.delivered("rgb")["<ca-held-after@test>"]; n != 0 {
		t.Fatalf("the intruder's message after the reload was delivered %d times", n)
	}
	if viaA2("<ca-after@test>") {
		t.Fatalf("mail after the reload crossed a2:\n%s", readOneMessage(t, tm, "rgb", "<ca-after@test>"))
	}
	// a2 stays out: sampled over its reconnection attempts (the channel
	// client retries, a1's pool verifies it again), it never counts again.
	for range 10 {
		if _, ok := a1.Mesh().View().Member("a2"); ok {
			t.Fatal("a1 counts a2 again")
		}
		if s := a1.Mesh().ChannelMembers(); slices.Contains(s, "a2") {
			t.Fatalf("a2 holds a port-691 session at a1 again: %v", s)
		}
		time.Sleep(100 * time.Millisecond) // sampling over time, not waiting for a condition
	}
}
