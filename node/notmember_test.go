package node

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/node/config"
)

// TestMemberThatStopsCountingLosesChannelSession plays a node that stops
// proving its name in gossip while it holds its port-691 session at the
// master: a2 counts and holds its session at a1 (master); then the
// verification handshakes a1 makes to a2's advertised port-691 address
// fail (a2 no longer answers them), so at its next periodic proof a1 no
// longer counts a2, which itself notices nothing and keeps its session
// open. a1 must close that session too: before, the channel checked
// membership only at HELLO, so a2 went on feeding the master observations
// through a session opened while it counted. The close is counted under
// meshd_mesh_peers_dropped_total with reason not_member; a2 does not get a
// session back; mail from rgb to rga and from a1 to rgb before and after
// is delivered exactly once.
func TestMemberThatStopsCountingLosesChannelSession(t *testing.T) {
	tm := newTestMeshWith(t, map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}},
		func(c *config.Config) {
			if c.Node.Name == "a1" {
				c.Mesh.Priority = 100
			}
		})
	tm.dumpQueuesOnFailure(t)
	a1, a2 := tm.nodes["a1"], tm.nodes["a2"]
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	var a2LS string
	poll(t, 20*time.Second, "a1 master, a2 counted and holding a port-691 session at a1", func() error {
		v := a1.Mesh().View()
		if v.Master != "a1" {
			return fmt.Errorf("master %q", v.Master)
		}
		mb, ok := v.Member("a2")
		if !ok {
			return fmt.Errorf("a1 does not count a2")
		}
		a2LS = mb.LinkState
		if s := a1.Mesh().ChannelMembers(); !slices.Contains(s, "a2") {
			return fmt.Errorf("a1's member sessions: %v", s)
		}
		return nil
	})
	once := func(rg string, ids ...string) func() error {
		return func() error {
			got := tm.delivered(rg)
			for _, id := range ids {
				if got[id] != 1 {
					return fmt.Errorf("%s delivered %d times in %s", id, got[id], rg)
				}
			}
			return nil
		}
	}
	if err := tm.sendTo("b1", "alice@rga.test", "<nm-in-before@test>"); err != nil {
		t.Fatal(err)
	}
	if err := tm.sendTo("a1", "bob@rgb.test", "<nm-out-before@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "mail before delivered once", func() error {
		if err := once("rga", "<nm-in-before@test>")(); err != nil {
			return err
		}
		return once("rgb", "<nm-out-before@test>")()
	})

	tm.mu.Lock()
	tm.dialHook = func(node, addr string, dial func() (net.Conn, error)) (net.Conn, error) {
		if node == "a1" && addr == a2LS {
			return nil, errors.New("test: a2 no longer answers proofs")
		}
		return dial()
	}
	tm.mu.Unlock()
	took := poll(t, 30*time.Second, "a2 no longer counted at a1", func() error {
		if _, ok := a1.Mesh().View().Member("a2"); ok {
			return fmt.Errorf("a1 still counts a2")
		}
		return nil
	})
	t.Logf("a2 stopped counting at a1 %v after its proofs began to fail", took)
	if v := a2.Mesh().View(); v.Master != "a1" {
		t.Fatalf("a2 no longer sees a1 as its master (%q): it would leave by itself, the test proves nothing", v.Master)
	}
	poll(t, 5*time.Second, "a2's port-691 session at a1 closed and counted", func() error {
		if s := a1.Mesh().ChannelMembers(); slices.Contains(s, "a2") {
			return fmt.Errorf("a2 still holds a port-691 session at a1: %v", s)
		}
		if m := metricsText(t, a1); !strings.Contains(m, `meshd_mesh_peers_dropped_total{channel="channel",reason="not_member"} 1`) ||
			!strings.Contains(m, `meshd_mesh_peers_dropped_total{channel="member",reason="reverify"} 1`) {
			return fmt.Errorf("metrics lack the drops:\n%s", grepLines(m, "dropped"))
		}
		return nil
	})
	if err := tm.sendTo("b1", "alice@rga.test", "<nm-in-after@test>"); err != nil {
		t.Fatal(err)
	}
	if err := tm.sendTo("a1", "bob@rgb.test", "<nm-out-after@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "mail before and after delivered once", func() error {
		if err := once("rga", "<nm-in-before@test>", "<nm-in-after@test>")(); err != nil {
			return err
		}
		return once("rgb", "<nm-out-before@test>", "<nm-out-after@test>")()
	})
	// a2 keeps trying (its channel client reconnects to the master it
	// still sees): it never holds a session again.
	for range 10 {
		if s := a1.Mesh().ChannelMembers(); slices.Contains(s, "a2") {
			t.Fatalf("a2 holds a port-691 session at a1 again: %v", s)
		}
		time.Sleep(100 * time.Millisecond) // sampling over time, not waiting for a condition
	}
}
