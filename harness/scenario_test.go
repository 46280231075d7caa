package harness

import (
	"strings"
	"testing"
	"time"
)

const topo = `
topology:
  routing_groups:
    - {name: rga, nodes: [{name: a1, priority: 2}, {name: a2}]}
    - {name: rgb, nodes: [{name: b1}]}
  connectors:
    - {name: ab, from: rga, to: rgb, cost: 10, source_bridgeheads: [a1], targets: [b1]}
    - {name: ba, from: rgb, to: rga, cost: 10}
`

func TestParseScenario(t *testing.T) {
	sc, err := ParseScenario([]byte("name: ok\n" + topo + `
timeline:
  - {at: 3s, heal: {connector: ab}}
  - {at: 1s, name: cut, cut: {connector: ab}}
  - {at: 2s, flap: {nodes: [a2, b1], period: 300ms}}
  - {at: 2s, partition: {groups: [[rga], [rgb]]}}
  - {at: 0s, send: {from: a2, to: x@rgb.test, count: 5}}
assert:
  - convergence: {step: cut, max: 2s}
  - route: {from: a1, domain: rgb.test, path: [rga, rgb], by: 5s}
`))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Timeline[0].At != 0 || sc.Timeline[4].At != 3*time.Second {
		t.Errorf("timeline not sorted: %+v", sc.Timeline)
	}
	if sc.Duration != 4*time.Second || sc.Settle != 30*time.Second || sc.Timers.ProbeInterval != 100*time.Millisecond {
		t.Errorf("defaults: duration %v settle %v timers %+v", sc.Duration, sc.Settle, sc.Timers)
	}
	if sc.Timeline[0].Send.Rate != 20 {
		t.Errorf("send rate default %v", sc.Timeline[0].Send.Rate)
	}
	if got := sc.Topology.RoutingGroups[1].Domains; len(got) != 1 || got[0] != "rgb.test" {
		t.Errorf("default domains %v", got)
	}
	if p := sc.Topology.pairs(&LinkRef{Connector: "ba"}); len(p) != 2 || p[0] != [2]string{"b1", "a1"} || p[1] != [2]string{"b1", "a2"} {
		t.Errorf("pairs of ba: %v", p)
	}
	if p := sc.Topology.pairs(&LinkRef{Groups: [][]string{{"rgb"}, {"rga"}}}); len(p) != 2 {
		t.Errorf("pairs of groups: %v", p)
	}
}

func TestParseScenarioExternal(t *testing.T) {
	sc, err := ParseScenario([]byte(`
name: ext
topology:
  routing_groups:
    - {name: rga, nodes: [{name: a1}, {name: a2}]}
  external:
    - {name: internet, from: rga, cost: 5, source_bridgeheads: [a2], domains: ["*.example.net"]}
timeline:
  - {at: 0s, send: {from: a1, to: u@mx.example.net, count: 1}}
  - {at: 1s, cut: {connector: internet}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p := sc.Topology.pairs(sc.Timeline[1].Cut); len(p) != 1 || p[0] != [2]string{"a2", "ext-internet"} {
		t.Errorf("pairs of the external connector: %v", p)
	}
	for _, bad := range []struct{ ext, want string }{
		{`{name: internet, from: rgz, cost: 5}`, "unknown routing group"},
		{`{name: internet, from: rga, cost: 5, domains: ["ex*.net"]}`, "bad domain pattern"},
		{`{name: internet, from: rga, cost: 5, source_bridgeheads: [zz]}`, "not a node of rga"},
	} {
		_, err := ParseScenario([]byte("name: x\ntopology:\n  routing_groups: [{name: rga, nodes: [{name: a1}]}]\n  external: [" + bad.ext + "]\n"))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: err = %v, want %q", bad.ext, err, bad.want)
		}
	}
	if _, err := ParseScenario([]byte("name: x\ntopology:\n  routing_groups: [{name: rga, nodes: [{name: a1}]}]\n" +
		"timeline:\n  - {at: 0s, send: {from: a1, to: u@example.net, count: 1}}\n")); err == nil {
		t.Error("a send to a domain nobody takes was accepted")
	}
}

func TestParseScenarioErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"no name", topo, "name is required"},
		{"unknown key", "name: x\nbogus: 1\n" + topo, "field bogus not found"},
		{"two actions", "name: x\n" + topo + "timeline:\n  - {at: 1s, crash: a1, restart: a1}\n", "exactly one action"},
		{"unknown node", "name: x\n" + topo + "timeline:\n  - {at: 1s, crash: zz}\n", `unknown node "zz"`},
		{"unknown connector", "name: x\n" + topo + "timeline:\n  - {at: 1s, cut: {connector: zz}}\n", `unknown connector "zz"`},
		{"foreign address", "name: x\n" + topo + "timeline:\n  - {at: 1s, send: {from: a1, to: u@else.test, count: 1}}\n", "not an address"},
		{"bad duration", "name: x\n" + topo + "timeline:\n  - {at: soon, crash: a1}\n", "soon"},
		{"no deadline", "name: x\n" + topo + "assert:\n  - delivered_exactly_once: {}\n", "by is required"},
		{"unknown step", "name: x\n" + topo + "assert:\n  - convergence: {step: nope, max: 1s}\n", `no step named "nope"`},
		{"bad cost", "name: x\ntopology:\n  routing_groups: [{name: r, nodes: [{name: n}]}, {name: s, nodes: [{name: m}]}]\n  connectors: [{name: c, from: r, to: s, cost: 0}]\n", "cost 0"},
		{"foreign bridgehead", "name: x\ntopology:\n  routing_groups: [{name: r, nodes: [{name: n}]}, {name: s, nodes: [{name: m}]}]\n  connectors: [{name: c, from: r, to: s, cost: 1, source_bridgeheads: [m]}]\n", "not a node of r"},
		{"duplicate node", "name: x\ntopology:\n  routing_groups: [{name: r, nodes: [{name: n}]}, {name: s, nodes: [{name: n}]}]\n", `duplicate node "n"`},
		{"empty", "", "empty scenario"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
