package main_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/pki"
)

// lab is an organisation of real meshd processes on loopback, the setup
// the multi-node e2e tests share: one lab CA with a certificate for every
// member (pki.Lab), the gossip key beside it, one org key, and a meshd
// process for every member with its own temp dir and config. Every
// member's mesh, gossip and linkstate listeners are chosen before any
// node starts, so that connectors, seeds and organisation documents can
// name them.
type lab struct {
	t       testing.TB
	Dir     string // the organisation's directory: CA, certificates, gossip key, documents (orgDoc)
	opts    labOptions
	addrs   map[string]labAddrs
	nodes   map[string]*meshNode
	ca      string
	certs   map[string][2]string
	gossip  string // mesh.gossip_key
	reserve []string
}

// labOptions describes a lab: its members and what all of them share.
type labOptions struct {
	Members []labMember // in start order; a group is the members naming it as RG
	// Node is every member's nodeOptions. LocalDomains defaults to
	// <rg>.test, AllowNetworks to 127.0.0.0/8; Reserved addresses (a
	// smarthost's, a dead LMTP port) are never chosen as a lab listener.
	// Extra is merged section by section over the lab's own sections, so
	// Extra["mesh"] adds mesh keys (ttl, shadow_check) to the lab's.
	Node nodeOptions
	// NoGroups leaves mesh.routing_groups and the connectors out: the nodes
	// learn their topology from an organisation document (orgDoc, then
	// meshctl org apply).
	NoGroups bool
}

// labMember is one meshd process of a lab.
type labMember struct {
	Name, RG   string
	Links      []labLink        // connectors to other groups of the lab
	Connectors []map[string]any // further connectors as written in the config (a smarthost's)
	Extra      map[string]any   // merged over this node's config after labOptions.Node.Extra
}

// labLink is a connector from its member's group to group To; its targets
// are the mesh listeners of To's members.
type labLink struct {
	Name, To string
	Cost     int // 10 when 0
}

type labAddrs struct{ mesh, gossip, linkstate string }

// labOrgKey is every lab's mesh.org_key.
var labOrgKey = base64.StdEncoding.EncodeToString([]byte("e2e-org-key-0123456789abcdef0123"))

// startLab writes the organisation's keys and certificates and starts
// every member in order (each waits for its SMTP greeting, not for the
// mesh: the tests poll for the routes they need).
func startLab(t testing.TB, opts labOptions) *lab {
	t.Helper()
	l := &lab{t: t, Dir: t.TempDir(), opts: opts, addrs: map[string]labAddrs{}, nodes: map[string]*meshNode{}}
	ids := make([]pki.Identity, len(opts.Members))
	for i, m := range opts.Members {
		ids[i] = pki.Identity{Node: m.Name, RG: m.RG}
	}
	var err error
	if l.ca, l.certs, err = pki.Lab(l.Dir, ids...); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(l.Dir, pki.GossipKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	l.gossip = strings.TrimSpace(string(key))
	avoid := map[int]bool{}
	for _, a := range opts.Node.Reserved {
		_, p := splitHostPort(t, a)
		avoid[p] = true
	}
	free := freeAddrs(t, 3*len(opts.Members), avoid)
	for i, m := range opts.Members {
		l.addrs[m.Name] = labAddrs{mesh: free[3*i], gossip: free[3*i+1], linkstate: free[3*i+2]}
	}
	l.reserve = append(free, opts.Node.Reserved...)
	for _, m := range opts.Members {
		l.nodes[m.Name] = startNode(t, l.nodeOptions(m))
	}
	return l
}

// node is the running member called name.
func (l *lab) node(name string) *meshNode {
	n, ok := l.nodes[name]
	if !ok {
		l.t.Fatalf("e2e: the lab has no member %q", name)
	}
	return n
}

// group is the members of rg, in start order.
func (l *lab) group(rg string) []labMember {
	var ms []labMember
	for _, m := range l.opts.Members {
		if m.RG == rg {
			ms = append(ms, m)
		}
	}
	return ms
}

// groups is the lab's routing groups in the order their first members start.
func (l *lab) groups() []string {
	var rgs []string
	seen := map[string]bool{}
	for _, m := range l.opts.Members {
		if !seen[m.RG] {
			seen[m.RG] = true
			rgs = append(rgs, m.RG)
		}
	}
	return rgs
}

// nodeOptions is m's startNode options: the lab's sections (node, listen,
// mesh, connectors) under labOptions.Node.Extra under m.Extra.
func (l *lab) nodeOptions(m labMember) nodeOptions {
	o := l.opts.Node
	if len(o.LocalDomains) == 0 {
		o.LocalDomains = []string{m.RG + ".test"}
	}
	if o.AllowNetworks == nil {
		o.AllowNetworks = []string{"127.0.0.0/8"}
	}
	o.Reserved = l.reserve
	a := l.addrs[m.Name]
	mesh := map[string]any{
		"org_key":       labOrgKey,
		"gossip_key":    l.gossip,
		"identity":      map[string]any{"ca_files": []string{l.ca}, "cert_file": l.certs[m.Name][0], "key_file": l.certs[m.Name][1]},
		"sync_interval": "1s", "collect_window": "100ms", "fast_gossip": true,
		"probe": map[string]any{"interval": "200ms", "keepalive": "500ms", "timeout": "500ms"},
	}
	if peers := l.group(m.RG); len(peers) > 1 {
		mesh["seeds"] = []string{l.addrs[peers[0].Name].gossip}
	}
	extra := map[string]any{
		"node":   map[string]any{"name": m.Name, "routing_group": m.RG},
		"listen": map[string]any{"mesh": a.mesh, "gossip": a.gossip, "linkstate": a.linkstate},
		"mesh":   mesh,
	}
	if !l.opts.NoGroups {
		var rgs []map[string]any
		for _, rg := range l.groups() {
			rgs = append(rgs, map[string]any{"name": rg})
		}
		mesh["routing_groups"] = rgs
		var conns []map[string]any
		for _, k := range m.Links {
			conns = append(conns, l.connector(k))
		}
		if conns = append(conns, m.Connectors...); len(conns) > 0 {
			extra["connectors"] = conns
		}
	}
	mergeSections(extra, o.Extra)
	mergeSections(extra, m.Extra)
	o.Extra = extra
	return o
}

// connector is k as a config connector: its targets the mesh listeners of
// k.To's members.
func (l *lab) connector(k labLink) map[string]any {
	cost := k.Cost
	if cost == 0 {
		cost = 10
	}
	var targets []string
	for _, m := range l.group(k.To) {
		targets = append(targets, l.addrs[m.Name].mesh)
	}
	if len(targets) == 0 {
		l.t.Fatalf("e2e: lab connector %s goes to %q, a group with no members", k.Name, k.To)
	}
	return map[string]any{"name": k.Name, "to": k.To, "cost": cost, "targets": targets}
}

// orgDoc writes an organisation document into the lab's directory (where
// meshctl org apply -dir finds the CA's key to sign it) and returns its
// path: every group of the lab with its domain <rg>.test and its members'
// mesh listeners, and connectors, the document's connector list as YAML
// lines ("  - {name: ab, from: rga, to: rgb, cost: 10}").
func (l *lab) orgDoc(file string, version int, connectors string) string {
	l.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "version: %d\ncomment: e2e\nrouting_groups:\n", version)
	for _, rg := range l.groups() {
		var nodes []string
		for _, m := range l.group(rg) {
			nodes = append(nodes, fmt.Sprintf("{name: %s, mesh: %q}", m.Name, l.addrs[m.Name].mesh))
		}
		fmt.Fprintf(&b, "  - {name: %s, domains: [%s.test], nodes: [%s]}\n", rg, rg, strings.Join(nodes, ", "))
	}
	b.WriteString("connectors:\n" + connectors)
	path := filepath.Join(l.Dir, file)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return path
}

// waitPath polls until member from routes rcpt along path ("rga>rgb>rgc").
func (l *lab) waitPath(from, rcpt, path string, timeout time.Duration) {
	l.t.Helper()
	var got string
	var err error
	if !testkit.Poll(timeout, func() bool {
		d, e := l.node(from).trace(rcpt)
		got, err = strings.Join(d.Path, ">"), e
		return err == nil && got == path
	}) {
		l.t.Fatalf("%s routes %s by %q after %v, want %q (%v)", from, rcpt, got, timeout, path, err)
	}
}

// mergeSections merges src over dst: a section that is a map in both is
// merged key by key (into a copy, src's maps are never changed), anything
// else replaced.
func mergeSections(dst, src map[string]any) {
	for k, v := range src {
		sub, ok1 := v.(map[string]any)
		cur, ok2 := dst[k].(map[string]any)
		if !ok1 || !ok2 {
			dst[k] = v
			continue
		}
		merged := make(map[string]any, len(cur)+len(sub))
		for sk, sv := range cur {
			merged[sk] = sv
		}
		for sk, sv := range sub {
			merged[sk] = sv
		}
		dst[k] = merged
	}
}
