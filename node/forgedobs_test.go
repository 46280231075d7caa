package node

import (
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/node/config"
)

// TestForgedPeerObservationRefused plays the intruder of issue 18
// finding 2 holding a member's own certificate (a compromised node): it greets rga's master
// as that member and reports every pair of connector ab whose source is another node down,
// dated now. A member probes only its own pairs, so the master refuses them; ab stays up,
// and mail for rgb sent before and after the attack is delivered once each. (Observations
// dated beyond the clock skew are refused by the channel itself: linkstate/channel.)
func TestForgedPeerObservationRefused(t *testing.T) {
	tm := triangleMesh(t)
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	if err := tm.sendTo("a1", "bob@rgb.test", "<before@test>"); err != nil {
		t.Fatal(err)
	}
	master := tm.nodes["a1"].Mesh().View().Master
	mn := tm.nodes[master]
	rec, ok := mn.Mesh().LSDB().Snapshot().Get("rga")
	if !ok {
		t.Fatal("no record of rga")
	}
	member := "a2"
	if master == "a2" {
		member = "a1"
	}
	var forged []channel.Observation
	for _, k := range rec.Connectors {
		if k.ID != "ab" {
			continue
		}
		for _, p := range k.Pairs {
			if p.Source == member {
				continue
			}
			forged = append(forged, channel.Observation{Connector: "ab", Source: p.Source, Target: p.Target, Up: false,
				At: time.Now()})
		}
	}
	if len(forged) == 0 {
		t.Fatal("connector ab has no pairs of another node to forge")
	}
	// The intruder holds the member's own certificate: authentication
	// alone does not make it a witness of other nodes' links.
	var tc *tls.Config
	if id := tm.nodes[member].id; id.Enabled() {
		tc = id.ClientTLS("channel", true)
	}
	c := channel.NewClient(channel.ClientConfig{Node: member, RG: "rga", Logger: testLogger(t), TLS: tc,
		PingInterval: 100 * time.Millisecond,
		OnRecords:    func(bool, [][]byte) {}, Observations: func() []channel.Observation { return forged }})
	c.SetMaster(mn.LinkStateAddr())
	poll(t, 10*time.Second, "forged observations refused", func() error {
		if got := mn.Mesh().Stats().ObservationsRefused; got < uint64(len(forged)) {
			return fmt.Errorf("%d refused", got)
		}
		return nil
	})
	c.Close()
	abUp := func() error {
		rec, _ := mn.Mesh().LSDB().Snapshot().Get("rga")
		for i := range rec.Connectors {
			if k := &rec.Connectors[i]; k.ID == "ab" && !k.Up() {
				return fmt.Errorf("ab advertised down: %+v", k.Pairs)
			}
		}
		return nil
	}
	// The real a2 reconnects and resends its own observations; ab is
	// up through all of it.
	for i := 0; i < 10; i++ {
		if err := abUp(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // sampling the record over a second, not waiting for a condition
	}
	if err := tm.sendTo("a1", "bob@rgb.test", "<after@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "mail before and after delivered", func() error {
		d := tm.delivered("rgb")
		if d["<before@test>"] != 1 || d["<after@test>"] != 1 {
			return fmt.Errorf("delivered %v", d)
		}
		return nil
	})
	if got := tm.path("a1", "rgb.test"); got == "" {
		t.Error("a1 has no route to rgb after the attack")
	}
}

// TestForgedObservationEndsWithSession plays the intruder of issue 18
// finding 2 that holds a member's own certificate and reports that
// member's own pairs of connector ab down (which the source check lets
// through), then hangs up. Before, the master kept the report until the
// real member's next transition: the forged state pinned ab's pairs. Now
// what a session reported ends with it (after mesh.observation_lease,
// 1s here): the pairs come back without the real member saying anything
// new, and mail before and after is delivered once each.
func TestForgedObservationEndsWithSession(t *testing.T) {
	tm := newTestMeshWith(t,
		map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1", "b2"}, "rgc": {"c1", "c2"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}, {"bc", "rgb", "rgc", 10}, {"cb", "rgc", "rgb", 10},
			{"ac", "rga", "rgc", 50}, {"ca", "rgc", "rga", 50}},
		func(c *config.Config) { c.Mesh.ObservationLease = time.Second })
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	if err := tm.sendTo("a1", "bob@rgb.test", "<lease-before@test>"); err != nil {
		t.Fatal(err)
	}
	master := tm.nodes["a1"].Mesh().View().Master
	mn := tm.nodes[master]
	member := "a2"
	if master == "a2" {
		member = "a1"
	}
	memberPairs := func() []linkstate.PairState {
		rec, _ := mn.Mesh().LSDB().Snapshot().Get("rga")
		var out []linkstate.PairState
		for _, k := range rec.Connectors {
			if k.ID == "ab" {
				for _, p := range k.Pairs {
					if p.Source == member {
						out = append(out, p)
					}
				}
			}
		}
		return out
	}
	var forged []channel.Observation
	poll(t, 10*time.Second, "the member's pairs of ab in rga's record", func() error {
		forged = forged[:0]
		for _, p := range memberPairs() {
			if !p.Up {
				return fmt.Errorf("pair %+v down before the attack", p)
			}
			forged = append(forged, channel.Observation{Connector: "ab", Source: member, Target: p.Target, Up: false, At: time.Now()})
		}
		if len(forged) == 0 {
			return fmt.Errorf("no pairs of %s", member)
		}
		return nil
	})
	var tc *tls.Config
	if id := tm.nodes[member].id; id.Enabled() {
		tc = id.ClientTLS("channel", true)
	}
	c := channel.NewClient(channel.ClientConfig{Node: member, RG: "rga", Logger: testLogger(t), TLS: tc,
		PingInterval: 100 * time.Millisecond,
		OnRecords:    func(bool, [][]byte) {}, Observations: func() []channel.Observation { return forged }})
	c.SetMaster(mn.LinkStateAddr())
	allDown := func() error {
		for _, p := range memberPairs() {
			if p.Up {
				return fmt.Errorf("pair %+v up", p)
			}
		}
		return nil
	}
	poll(t, 10*time.Second, "the forged report took effect while its session lasted", allDown)
	c.Close()
	poll(t, 10*time.Second, "the forged state ended with its session", func() error {
		for _, p := range memberPairs() {
			if !p.Up {
				return fmt.Errorf("pair %+v still down", p)
			}
		}
		return nil
	})
	if err := tm.sendTo("a1", "bob@rgb.test", "<lease-after@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "mail before and after delivered", func() error {
		d := tm.delivered("rgb")
		if d["<lease-before@test>"] != 1 || d["<lease-after@test>"] != 1 {
			return fmt.Errorf("delivered %v", d)
		}
		return nil
	})
}
