package mesh

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/routing"
)

// ring10 is a mesh of ten routing groups of two nodes each: a ring of
// cost-10 links both ways plus cost-25 chords from each group to the one
// five steps on.
func ring10(t testing.TB) *testMesh {
	rgs := map[string][]string{}
	var links []link
	name := func(i int) string { return fmt.Sprintf("r%d", i%10) }
	for i := range 10 {
		rgs[name(i)] = []string{name(i) + "n1", name(i) + "n2"}
		links = append(links,
			link{name(i) + "-" + name(i+1), name(i), name(i + 1), 10},
			link{name(i+1) + "-" + name(i), name(i + 1), name(i), 10})
		if i < 5 {
			links = append(links,
				link{name(i) + "-x-" + name(i+5), name(i), name(i + 5), 25},
				link{name(i+5) + "-x-" + name(i), name(i + 5), name(i), 25})
		}
	}
	return newTestMesh(t, rgs, links)
}

// markPair makes the source bridgehead src observe (connector, target)
// as up or down, as its failure detection would after glitch retries.
func markPair(tm *testMesh, src, connector, target string, up bool) {
	p := tm.nodes[src].mesh.probe
	n := 1
	if up {
		n = p.cfg.UpAfter
	}
	for range n {
		p.result(pairKey{connector, src, target}, up)
	}
}

// routesMatch waits until every node's table routes every RG's domain
// along the path a fresh computation over the final LSDB gives.
func routesMatch(tm *testMesh, domains []string) func() error {
	return func() error {
		for _, nd := range tm.live() {
			recs := nd.mesh.LSDB().Snapshot().Records()
			want, err := routing.Compute(routing.Self{Node: nd.name, RG: nd.rg}, recs)
			if err != nil {
				return err
			}
			tab := nd.mesh.Routes()
			for _, d := range domains {
				w, _ := want.Route("m", d)
				g, _ := tab.Route("m", d)
				if strings.Join(w.Path, ">") != strings.Join(g.Path, ">") {
					return fmt.Errorf("%s -> %s: table says %v, LSDB gives %v", nd.name, d, g.Path, w.Path)
				}
			}
		}
		return nil
	}
}

// recordAt waits until every node holds rg's record at least at version v.
func recordAt(tm *testMesh, rg string, v linkstate.Version) func() error {
	return func() error {
		for _, nd := range tm.live() {
			r, ok := nd.mesh.LSDB().Snapshot().Get(rg)
			if !ok || r.Version.Compare(v) < 0 {
				return fmt.Errorf("%s holds %s at %v", nd.name, rg, r)
			}
		}
		return nil
	}
}

// BenchmarkConvergence10RG measures the time from a connector being
// marked down by its source bridgeheads to every node of a 10-RG,
// 20-node mesh holding the new record and routing by it, and the same
// for the way back up. Failure detection itself (glitch retries) comes
// before this and is configured separately.
func BenchmarkConvergence10RG(b *testing.B) {
	tm := ring10(b)
	// No damping: every mark must be advertised.
	for _, nd := range tm.live() {
		nd.mesh.mu.Lock()
		nd.mesh.cfg.State.Damping = linkstate.DampingConfig{Penalty: 1, HalfLife: time.Second, Suppress: 1e6, Reuse: 1, MaxSuppress: time.Hour}
		nd.mesh.master.states = map[string]*linkstate.ConnectorState{}
		nd.mesh.mu.Unlock()
	}
	testkit.Eventually(b, 60*time.Second, "initial convergence", tm.converged(10))
	var domains []string
	for i := range 10 {
		domains = append(domains, fmt.Sprintf("r%d.test", i))
	}
	testkit.Eventually(b, 30*time.Second, "initial routes", routesMatch(tm, domains))
	// Long probe intervals: only our marks change pair states here.
	for _, nd := range tm.live() {
		nd.mesh.probe.cfg.Interval, nd.mesh.probe.cfg.Keepalive = time.Hour, time.Hour
	}
	targets := []string{tm.smtpOf["r1n1"], tm.smtpOf["r1n2"]}
	var atMaster, flooded time.Duration
	mark := func(up bool) time.Duration {
		before, _ := tm.nodes["r0n1"].mesh.LSDB().Snapshot().Get("r0")
		start := time.Now()
		for _, src := range []string{"r0n1", "r0n2"} {
			for _, tg := range targets {
				markPair(tm, src, "r0-r1", tg, up)
			}
		}
		var now *linkstate.Record
		testkit.Eventually(b, 10*time.Second, "new r0 record at its master", func() error {
			r, _ := tm.nodes["r0n1"].mesh.LSDB().Snapshot().Get("r0")
			if r.Version.Compare(before.Version) <= 0 {
				return fmt.Errorf("still %v, pairs %+v", r.Version, findConnector(r, "r0-r1").Pairs)
			}
			if c := findConnector(r, "r0-r1"); c == nil || c.Up() != up {
				return fmt.Errorf("r0-r1 not yet %v", up)
			}
			now = r
			return nil
		})
		atMaster += time.Since(start)
		testkit.Eventually(b, 10*time.Second, "record everywhere", recordAt(tm, "r0", now.Version))
		flooded += time.Since(start)
		testkit.Eventually(b, 10*time.Second, "routes everywhere", routesMatch(tm, domains))
		return time.Since(start)
	}
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, _ := tm.nodes["r0n1"].mesh.LSDB().Snapshot().Get("r0")
		total += mark(!findConnector(r, "r0-r1").Up())
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/convergence")
	b.ReportMetric(float64(atMaster.Microseconds())/1000/float64(b.N), "ms/at-master")
	b.ReportMetric(float64(flooded.Microseconds())/1000/float64(b.N), "ms/flooded")
}

func findConnector(r *linkstate.Record, id string) *linkstate.Connector {
	for i := range r.Connectors {
		if r.Connectors[i].ID == id {
			return &r.Connectors[i]
		}
	}
	return nil
}
