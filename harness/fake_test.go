package harness

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/meshd/meshd/harness/netem"
)

// fakeCluster is a mesh in a map: it answers the runner's questions
// without nodes, so the runner, the assertions and the report can be
// tested in milliseconds. A crash changes every live node's LSDB digest
// after reconverge, a send is delivered unless its node is broken.
type fakeCluster struct {
	mu          sync.Mutex
	net         *netem.Network
	rg          map[string]string
	down        map[string]bool
	full        map[string]bool
	originated  map[string]uint64
	version     int
	changeAt    time.Time // the new version becomes visible then
	reconverge  time.Duration
	routes      map[string][]string // "node domain" -> path
	routeAfter  map[string][]string // path after the first crash
	crashed     bool
	delivered   map[string]int
	broken      map[string]bool // accepts and never delivers
	duplicating map[string]bool // delivers twice
	origPerHop  uint64          // originations per crash
}

func newFake(sc *Scenario) *fakeCluster {
	f := &fakeCluster{net: netem.New(netem.Options{}), rg: map[string]string{}, down: map[string]bool{},
		full: map[string]bool{}, originated: map[string]uint64{}, routes: map[string][]string{},
		routeAfter: map[string][]string{}, delivered: map[string]int{}, broken: map[string]bool{},
		duplicating: map[string]bool{}, reconverge: 100 * time.Millisecond, origPerHop: 1}
	for _, rg := range sc.Topology.RoutingGroups {
		for _, n := range rg.Nodes {
			f.rg[n.Name] = rg.Name
			for _, other := range sc.Topology.RoutingGroups {
				path := []string{rg.Name}
				if other.Name != rg.Name {
					path = append(path, other.Name)
				}
				for _, d := range other.Domains {
					f.routes[n.Name+" "+d] = path
				}
			}
		}
	}
	return f
}

func (f *fakeCluster) factory() func(context.Context, *Scenario, Options) (Cluster, error) {
	return func(context.Context, *Scenario, Options) (Cluster, error) { return f, nil }
}

func (f *fakeCluster) Faults() Faults { return f.net }

func (f *fakeCluster) Crash(node string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[node] {
		return errors.New("already down")
	}
	f.down[node] = true
	f.crashed = true
	f.net.Host(node)
	f.net.Crash(node)
	f.version++
	f.changeAt = time.Now().Add(f.reconverge)
	for n := range f.rg {
		if !f.down[n] {
			f.originated[n] += f.origPerHop
			break
		}
	}
	return nil
}

func (f *fakeCluster) Restart(_ context.Context, node string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[node] = false
	f.net.Restart(node)
	f.version++
	f.changeAt = time.Now().Add(f.reconverge)
	return nil
}

func (f *fakeCluster) SetDiskFull(_ context.Context, node string, full bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.full[node] = full
	return nil
}

func (f *fakeCluster) Send(_ context.Context, from string, m Mail) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.down[from]:
		return errors.New("connection refused")
	case f.full[from]:
		return errors.New("451 4.3.0 queue full")
	case f.broken[from]:
	case f.duplicating[from]:
		f.delivered[m.MessageID] += 2
	default:
		f.delivered[m.MessageID]++
	}
	return nil
}

func (f *fakeCluster) Delivered() (Deliveries, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := Deliveries{Copies: make(map[string]int, len(f.delivered)), Bounced: map[string]string{}}
	for k, v := range f.delivered {
		out.Copies[k] = v
	}
	return out, nil
}

func (f *fakeCluster) LSDB(node string) (LSDBInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[node] {
		return LSDBInfo{}, false
	}
	v := f.version
	if time.Now().Before(f.changeAt) && node != f.firstLive() {
		v-- // the others have not heard yet
	}
	groups := map[string]bool{}
	for _, rg := range f.rg {
		groups[rg] = true
	}
	return LSDBInfo{Digest: sha256.Sum256(fmt.Appendf(nil, "v%d", v)), Records: len(groups)}, true
}

func (f *fakeCluster) firstLive() string {
	best := ""
	for n := range f.rg {
		if !f.down[n] && (best == "" || n < best) {
			best = n
		}
	}
	return best
}

func (f *fakeCluster) Route(node, domain string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[node] {
		return nil, errors.New("node down")
	}
	key := node + " " + domain
	if p, ok := f.routeAfter[key]; ok && f.crashed && !time.Now().Before(f.changeAt) {
		return p, nil
	}
	if p, ok := f.routes[key]; ok {
		return p, nil
	}
	return nil, errors.New("no route")
}

func (f *fakeCluster) Originated(node string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.originated[node]
}

func (f *fakeCluster) Close() error { return f.net.Close() }

func (f *fakeCluster) RemoveRG(node, rg string) error { return nil }
