package routing

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/meshd/meshd/linkstate"
)

// benchRecords builds n RGs, each with two members, one address space and
// five connectors to random other RGs (costs 1..100, a few down); every
// 100th RG also has an external connector for "*".
func benchRecords(n int) []*linkstate.Record {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	recs := make([]*linkstate.Record, n)
	for i := range recs {
		name := fmt.Sprintf("rg%05d", i)
		r := &linkstate.Record{
			RG:      name,
			Version: linkstate.Version{Epoch: 1, Major: 1},
			Members: []linkstate.Member{
				{Name: name + "-n1", SMTP: name + "-n1:25"},
				{Name: name + "-n2", SMTP: name + "-n2:25"},
			},
			AddressSpaces: []linkstate.AddressSpace{{Pattern: name + ".example", Cost: 1}},
		}
		for k := 0; k < 5; k++ {
			to := fmt.Sprintf("rg%05d", rng.IntN(n))
			c := linkstate.Connector{
				ID: fmt.Sprintf("%s-c%d", name, k), From: name, To: to, Cost: 1 + uint32(rng.IntN(100)),
				SourceBridgeheads: []string{name + "-n1", name + "-n2"},
				TargetBridgeheads: []string{to + "-n1:25", to + "-n2:25"},
				Pairs: []linkstate.PairState{
					{Source: name + "-n1", Target: to + "-n1:25", Up: true},
					{Source: name + "-n2", Target: to + "-n2:25", Up: rng.IntN(10) > 0},
				},
			}
			if rng.IntN(50) == 0 {
				c.Suppressed = true
			}
			r.Connectors = append(r.Connectors, c)
		}
		if i%100 == 0 {
			r.Connectors = append(r.Connectors, linkstate.Connector{ID: name + "-net", From: name, Cost: 1,
				AddressSpaces: []linkstate.AddressSpace{{Pattern: "*", Cost: 10}}})
		}
		recs[i] = r
	}
	return recs
}

// BenchmarkCompute is the full computation from nothing: a fresh
// Computer (no cache) builds the graph, runs Dijkstra and indexes the
// address spaces.
func BenchmarkCompute(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		recs := benchRecords(n)
		self := Self{Node: "rg00000-n1", RG: "rg00000"}
		b.Run(fmt.Sprintf("rgs=%d", n), func(b *testing.B) {
			reportCPU(b, func() {
				var c Computer
				if _, err := c.Compute(self, recs); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkComputeIncremental is the Router's steady state: one record
// changes (a connector flaps, so the record is new) and the same Computer
// recomputes the whole table (Dijkstra over all RGs included).
func BenchmarkComputeIncremental(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		recs := benchRecords(n)
		self := Self{Node: "rg00000-n1", RG: "rg00000"}
		b.Run(fmt.Sprintf("rgs=%d", n), func(b *testing.B) {
			var c Computer
			if _, err := c.Compute(self, recs); err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 1))
			reportCPU(b, func() {
				i := rng.IntN(n)
				cp := *recs[i]
				cp.Connectors = append([]linkstate.Connector(nil), cp.Connectors...)
				cp.Connectors[0].Suppressed = !cp.Connectors[0].Suppressed
				cp.Version.Minor++
				recs[i] = &cp
				if _, err := c.Compute(self, recs); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkSPF is the Dijkstra run alone, on a prebuilt graph.
func BenchmarkSPF(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		var c Computer
		g, _ := c.buildGraph("rg00000", benchRecords(n))
		b.Run(fmt.Sprintf("rgs=%d", n), func(b *testing.B) {
			var s spfScratch
			reportCPU(b, func() { g.run(&s) })
		})
	}
}

func BenchmarkRoute(b *testing.B) {
	tb, err := Compute(Self{Node: "rg00000-n1", RG: "rg00000"}, benchRecords(10000))
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = msgID(i)
	}
	for _, dom := range []string{"rg04321.example", "elsewhere.example.org"} {
		if _, err := tb.Route("m", dom); err != nil {
			b.Fatalf("%s: %v", dom, err)
		}
		b.Run(dom, func(b *testing.B) {
			i := 0
			reportCPU(b, func() {
				if _, err := tb.Route(ids[i&1023], dom); err != nil {
					b.Fatal(err)
				}
				i++
			})
		})
	}
}

// cpuTime is the process's user+system CPU time. The benchmark machine is
// shared, so wall-clock ns/op includes waiting for a core; the cpu-ns/op
// metric (CPU time of the whole process, GC included, per op) does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU runs the benchmark loop body and reports cpu-ns/op.
func reportCPU(b *testing.B, body func()) {
	b.ReportAllocs()
	start, n := cpuTime(), 0
	for b.Loop() {
		body()
		n++
	}
	if n > 0 {
		b.ReportMetric(float64(cpuTime()-start)/float64(n), "cpu-ns/op")
	}
}
