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

// TestE2EOrgDocumentLive: three meshd processes (one node per site)
// started from short files (no routing groups, no connectors) learn
// their topology from an organisation document applied at one node with
// meshctl; a second document applied at another node makes rgb's
// connector to rgc dear and adds a direct pair between rga and rgc:
// every node routes by it (the time is logged), and the mail sent from
// a1 to rgc before and right after the change is delivered exactly once.
// A stale document and one signed by another CA are refused at every
// node, which keeps the version in force.
func TestE2EOrgDocumentLive(t *testing.T) {
	mesh := freeAddrs(t, 3, nil)
	meshOf := map[string]string{"a1": mesh[0], "b1": mesh[1], "c1": mesh[2]}
	rgOf := map[string]string{"a1": "rga", "b1": "rgb", "c1": "rgc"}
	orgDir := t.TempDir()
	caFile, certs, err := pki.Lab(orgDir, pki.Identity{Node: "a1", RG: "rga"}, pki.Identity{Node: "b1", RG: "rgb"}, pki.Identity{Node: "c1", RG: "rgc"})
	if err != nil {
		t.Fatal(err)
	}
	gossipKey, err := os.ReadFile(filepath.Join(orgDir, pki.GossipKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	orgKey := base64.StdEncoding.EncodeToString([]byte("e2e-org-key-0123456789abcdef0123"))
	nodes := map[string]*meshNode{}
	for _, name := range []string{"a1", "b1", "c1"} {
		rg := rgOf[name]
		// The short file: name, data dir, listeners, certificate, keys.
		nodes[name] = startNode(t, nodeOptions{
			AllowNetworks: []string{"127.0.0.0/8"},
			LocalDomains:  []string{rg + ".test"},
			Reserved:      mesh,
			Extra: map[string]any{
				"node":   map[string]any{"name": name, "routing_group": rg},
				"listen": map[string]any{"mesh": meshOf[name]},
				"mesh": map[string]any{
					"org_key":       orgKey,
					"gossip_key":    strings.TrimSpace(string(gossipKey)),
					"identity":      map[string]any{"ca_files": []string{caFile}, "cert_file": certs[name][0], "key_file": certs[name][1]},
					"sync_interval": "1s", "collect_window": "100ms", "fast_gossip": true,
					"probe": map[string]any{"interval": "200ms", "keepalive": "500ms", "timeout": "500ms"},
				},
			},
		})
	}
	writeOrg := func(name string, version int, conns string) string {
		doc := fmt.Sprintf(`version: %d
comment: e2e
routing_groups:
  - {name: rga, domains: [rga.test], nodes: [{name: a1, mesh: "%s"}]}
  - {name: rgb, domains: [rgb.test], nodes: [{name: b1, mesh: "%s"}]}
  - {name: rgc, domains: [rgc.test], nodes: [{name: c1, mesh: "%s"}]}
connectors:
%s`, version, meshOf["a1"], meshOf["b1"], meshOf["c1"], conns)
		path := filepath.Join(orgDir, name)
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	line := `  - {name: ab, from: rga, to: rgb, cost: 10}
  - {name: ba, from: rgb, to: rga, cost: 10}
  - {name: bc, from: rgb, to: rgc, cost: 10}
  - {name: cb, from: rgc, to: rgb, cost: 10}
`
	v1 := writeOrg("v1.yaml", 1, line)
	if out, code := meshctl(t, "-admin", nodes["a1"].Admin, "org", "apply", "-dir", orgDir, v1); code != 0 {
		t.Fatalf("meshctl org apply v1 at a1: exit %d\n%s", code, out)
	}
	routes := func(want map[string][2]string) func() bool {
		return func() bool {
			for name, w := range want {
				d, err := nodes[name].trace(w[0])
				if err != nil || strings.Join(d.Path, ">") != w[1] {
					return false
				}
			}
			return true
		}
	}
	v1Routes := map[string][2]string{"a1": {"u@rgc.test", "rga>rgb>rgc"}, "c1": {"u@rga.test", "rgc>rgb>rga"}, "b1": {"u@rgc.test", "rgb>rgc"}}
	if !testkit.Poll(30*time.Second, routes(v1Routes)) {
		t.Fatal("the nodes do not route by v1")
	}

	subject := uniq(t)
	send := func(from, to int) error {
		for i := from; i < to; i++ {
			if out, code := swaks(t, "--server", nodes["a1"].SMTP, "--from", "alice@rga.test", "--to", "carol@rgc.test",
				"--header", fmt.Sprintf("Subject: %s-%02d", subject, i)); code != 0 {
				return fmt.Errorf("swaks %d: exit %d\n%s", i, code, out)
			}
		}
		return nil
	}
	sendN := func(from, to int) {
		if err := send(from, to); err != nil {
			t.Fatal(err)
		}
	}
	sendN(0, 5)
	v2 := writeOrg("v2.yaml", 2, strings.Replace(line, "to: rgc, cost: 10", "to: rgc, cost: 60", 1)+
		"  - {name: ac, from: rga, to: rgc, cost: 15}\n  - {name: ca, from: rgc, to: rga, cost: 15}\n")
	start := time.Now()
	if out, code := meshctl(t, "-admin", nodes["c1"].Admin, "org", "apply", "-dir", orgDir, v2); code != 0 {
		t.Fatalf("meshctl org apply v2 at c1: exit %d\n%s", code, out)
	}
	applied := time.Since(start)
	during := make(chan error, 1)
	go func() { during <- send(5, 10) }() // mail while the mesh takes v2
	v2Routes := map[string][2]string{"a1": {"u@rgc.test", "rga>rgc"}, "c1": {"u@rga.test", "rgc>rga"}, "b1": {"u@rgc.test", "rgb>rga>rgc"}}
	if !testkit.Poll(30*time.Second, routes(v2Routes)) {
		t.Fatal("the nodes do not route by v2")
	}
	t.Logf("v2 applied at c1 (meshctl took %v): every node routes by it %v after meshctl started", applied.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if err := <-during; err != nil {
		t.Fatal(err)
	}
	sendN(10, 15)
	md := nodes["c1"].Maildir
	for i := range 15 {
		want := fmt.Sprintf("Subject: %s-%02d", subject, i)
		waitMailbox(t, md, "carol@rgc.test", 60*time.Second, want)
		n := 0
		for _, m := range mailbox(md, "carol@rgc.test") {
			if strings.Contains(m, want) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("message %d delivered %d times, want exactly once", i, n)
		}
	}

	// The attacks: v1 again (stale), and a v3 signed by another CA.
	other := t.TempDir()
	if _, err := pki.Init(pki.InitOptions{Dir: other}); err != nil {
		t.Fatal(err)
	}
	v3 := writeOrg("v3.yaml", 3, line)
	for name, n := range nodes {
		if out, code := meshctl(t, "-admin", n.Admin, "org", "apply", "-dir", orgDir, v1); code != 1 || !strings.Contains(out, "not newer") {
			t.Errorf("%s: stale v1: exit %d\n%s", name, code, out)
		}
		if out, code := meshctl(t, "-admin", n.Admin, "org", "apply", "-dir", other, v3); code != 1 || !strings.Contains(out, "signature does not verify") {
			t.Errorf("%s: v3 of another CA: exit %d\n%s", name, code, out)
		}
	}
	for name, n := range nodes {
		if out, code := meshctl(t, "-admin", n.Admin, "org", "show"); code != 0 || !strings.Contains(out, "# version 2,") {
			t.Errorf("%s: org show after the attacks: exit %d\n%s", name, code, out)
		}
	}
	if !testkit.Poll(10*time.Second, routes(v2Routes)) {
		t.Error("the nodes no longer route by v2 after the attacks")
	}
}
