package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshd/meshd/node"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/pki"
)

// meshctl org apply|show|diff|history|status against a real mesh node:
// YAML signed on the operator's side with the CA key, versions numbered
// from the node's, a stale document refused.
func TestOrgCommands(t *testing.T) {
	orgDir := t.TempDir()
	caFile, files, err := pki.Lab(orgDir, pki.Identity{Node: "a1", RG: "rga"})
	if err != nil {
		t.Fatal(err)
	}
	gossip, _ := os.ReadFile(filepath.Join(orgDir, pki.GossipKeyFile))
	orgKey, _ := os.ReadFile(filepath.Join(orgDir, pki.OrgKeyFile))
	cfg := config.Default()
	cfg.Node.Name, cfg.Node.RoutingGroup, cfg.Node.DataDir = "a1", "rga", t.TempDir()
	cfg.Listen = config.Listen{SMTP: "127.0.0.1:0", Admin: "127.0.0.1:0", Mesh: "127.0.0.1:0", Linkstate: "127.0.0.1:0", Gossip: "127.0.0.1:0"}
	cfg.Mesh.Identity = config.Identity{CAFiles: []string{caFile}, CertFile: files["a1"][0], KeyFile: files["a1"][1]}
	cfg.Mesh.GossipKey, cfg.Mesh.OrgKey = strings.TrimSpace(string(gossip)), strings.TrimSpace(string(orgKey))
	cfg.Mesh.RoutingGroups = []config.RoutingGroup{{Name: "rga"}}
	cfg.Mesh.FastGossip = true
	n, err := node.New(cfg, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctl := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"-admin", n.AdminAddr().String()}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	yml := filepath.Join(t.TempDir(), "org.yaml")
	write := func(cost int) {
		doc := fmt.Sprintf(`routing_groups:
  - {name: rga, domains: [a.test], nodes: [{name: a1, mesh: "%s"}]}
  - {name: rgb, domains: [b.test], nodes: [{name: b1, mesh: "127.0.0.1:1"}]}
connectors:
  - {name: ab, from: rga, to: rgb, cost: %d}
`, n.MeshAddr(), cost)
		if err := os.WriteFile(yml, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(10)
	if code, _, errOut := ctl("org", "apply", yml); code != 1 || !strings.Contains(errOut, "is not signed: give -dir") {
		t.Fatalf("apply without a key: %d %q", code, errOut)
	}
	if code, _, errOut := ctl("org", "show"); code != 1 || !strings.Contains(errOut, "no organisation document") {
		t.Fatalf("show before apply: %d %q", code, errOut)
	}
	if code, out, errOut := ctl("org", "apply", "-dir", orgDir, yml); code != 0 || out != "version 1 in force; the mesh floods it (meshctl org status)\n" {
		t.Fatalf("apply: %d %q %q", code, out, errOut)
	}
	write(3)
	if code, out, _ := ctl("org", "diff", yml); code != 0 || out != "~ version 1 -> 2\n~ connector rga/ab: cost 10 -> 3\n" {
		t.Fatalf("diff against the file: %d %q", code, out)
	}
	if code, out, errOut := ctl("org", "apply", "-dir", orgDir, yml); code != 0 || !strings.Contains(out, "version 2 in force") {
		t.Fatalf("apply v2: %d %q %q", code, out, errOut)
	}
	if code, out, _ := ctl("org", "diff"); code != 0 || out != "~ version 1 -> 2\n~ connector rga/ab: cost 10 -> 3\n" {
		t.Fatalf("diff: %d %q", code, out)
	}
	if code, out, _ := ctl("org", "show"); code != 0 || !strings.Contains(out, "# version 2,") || !strings.Contains(out, "cost: 3") {
		t.Fatalf("show: %d\n%s", code, out)
	}
	if code, out, _ := ctl("org", "history"); code != 0 || !strings.Contains(out, "VERSION") || strings.Count(out, "\n") != 3 {
		t.Fatalf("history: %d\n%s", code, out)
	}
	if code, out, _ := ctl("org", "status"); code != 0 || !strings.Contains(out, "rga  a1    2        self") {
		t.Fatalf("status: %d\n%s", code, out)
	}
	// A stale document (version 1 again, signed now) is refused.
	stale := strings.Replace(mustRead(t, yml), "routing_groups:", "version: 1\nrouting_groups:", 1)
	if err := os.WriteFile(yml, []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := ctl("org", "apply", "-dir", orgDir, yml); code != 1 || !strings.Contains(errOut, "not newer") {
		t.Fatalf("apply stale: %d %q", code, errOut)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
