package node

import (
	"fmt"
	"testing"
	"time"
)

// TestMasterRestartTwoNodeGroupConverges: a1, master of the two-node
// group rga, is killed and restarted on its data directory with new
// gossip and port-691 addresses, its only configured seed its own old
// gossip address (the test mesh seeds every node of a group with the
// first one's). Within a bound every node — rgb's too — holds one rga
// record that lists both members, a1 at its new port-691 address, and
// the digests agree. Before, a2 refused a1's new address while a1 was
// dead in its memberlist (until reaped, 30s), a1 found nobody, each half
// had a master, and b1 kept a2's record and refused a1 as no node of
// the LSDB.
func TestMasterRestartTwoNodeGroupConverges(t *testing.T) {
	tm := newTestMesh(t, map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}})
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	if !tm.nodes["a1"].Mesh().IsMaster() {
		t.Fatal("a1 is not rga's master")
	}
	for round := 0; round < 3; round++ {
		tm.crash("a1")
		poll(t, 15*time.Second, "a2 originates rga without a1", func() error {
			r, ok := tm.nodes["b1"].Mesh().LSDB().Snapshot().Get("rga")
			if !ok || r.Master != "a2" || len(r.Members) != 1 {
				return fmt.Errorf("b1 holds rga %+v", r)
			}
			return nil
		})
		a1 := tm.start("a1")
		want := ""
		for _, m := range a1.Mesh().View().Members {
			if m.Name == "a1" {
				want = m.LinkState
			}
		}
		took := poll(t, 10*time.Second, "every node holds rga with a1 at its new port-691 address", func() error {
			for _, n := range tm.live() {
				r, ok := n.Mesh().LSDB().Snapshot().Get("rga")
				if !ok {
					return fmt.Errorf("%s holds no rga record", n.cfg.Node.Name)
				}
				found := ""
				for _, m := range r.Members {
					if m.Name == "a1" {
						found = m.LinkState
					}
				}
				if len(r.Members) != 2 || found != want {
					return fmt.Errorf("%s holds rga %v from %s: members %+v, want a1 at %s", n.cfg.Node.Name, r.Version, r.Master, r.Members, want)
				}
			}
			return tm.converged()
		})
		t.Logf("round %d: converged %v after a1's restart", round, took)
	}
}
