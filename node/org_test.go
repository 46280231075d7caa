package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/orgdoc"
	"github.com/meshd/meshd/pki"
)

// orgFor describes a test mesh as an organisation document.
func (tm *testMesh) orgFor(version uint64, links []meshLink) orgdoc.Document {
	d := orgdoc.Document{Version: version, Organisation: "test"}
	for _, rg := range sortedRGs(tm.rgs) {
		g := orgdoc.RoutingGroup{Name: rg, Domains: []string{rg + ".test"}}
		for _, name := range tm.rgs[rg] {
			g.Nodes = append(g.Nodes, orgdoc.Node{Name: name, Mesh: tm.meshL[name]})
		}
		d.RoutingGroups = append(d.RoutingGroups, g)
	}
	for _, l := range links {
		d.Connectors = append(d.Connectors, orgdoc.Connector{Name: l.name, From: l.from, To: l.to, Cost: l.cost})
	}
	return d
}

// signOrg signs d with the test mesh's CA (pki.Lab's directory).
func (tm *testMesh) signOrg(t testing.TB, d orgdoc.Document) []byte {
	t.Helper()
	var caFile string
	for _, c := range tm.cfgs {
		caFile = c.Mesh.Identity.CAFiles[0]
		break
	}
	return signWith(t, d, caFile, filepath.Join(filepath.Dir(caFile), pki.CAKeyFile))
}

func signWith(t testing.TB, d orgdoc.Document, caFile, keyFile string) []byte {
	t.Helper()
	ca, key, err := pki.ReadCA(caFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := orgdoc.Sign(d, ca, key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postOrg is the admin API's POST /api/org (meshctl org apply).
func postOrg(n *Node, doc []byte) (int, string) {
	rec := httptest.NewRecorder()
	n.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/org", bytes.NewReader(doc)))
	return rec.Code, rec.Body.String()
}

func (tm *testMesh) orgVersions(want uint64) func() error {
	return func() error {
		for _, n := range tm.live() {
			if v := n.org.Version(); v != want {
				return fmt.Errorf("%s has version %d, want %d", n.cfg.Node.Name, v, want)
			}
		}
		return nil
	}
}

// A document given to one member floods to its group over port 691 and
// to the other groups over X-LINK2STATE; a node that was down gets it
// when it comes back (a member from its master, a lone bridgehead from its
// peer group); older and badly signed documents are refused at every
// node and go no further.
func TestOrgDocumentFloods(t *testing.T) {
	links := []meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}, {"bc", "rgb", "rgc", 10}, {"cb", "rgc", "rgb", 10}}
	tm := newTestMesh(t, map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1"}, "rgc": {"c1"}}, links)
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)

	v1 := tm.signOrg(t, tm.orgFor(1, links))
	start := time.Now()
	if code, body := postOrg(tm.nodes["a2"], v1); code != http.StatusOK || !strings.Contains(body, `"fresh": true`) {
		t.Fatalf("POST v1 at a2: %d %s", code, body)
	}
	poll(t, 10*time.Second, "v1 at every node", tm.orgVersions(1))
	t.Logf("v1 applied at a2 reached every node in %v", time.Since(start))

	// Down while v2 is applied: a member of rga (a2; a1 is its seed and
	// master) and the only node of rgc.
	tm.crash("a2")
	tm.crash("c1")
	v2 := tm.signOrg(t, tm.orgFor(2, append(links, meshLink{"ac", "rga", "rgc", 5})))
	if code, body := postOrg(tm.nodes["b1"], v2); code != http.StatusOK {
		t.Fatalf("POST v2 at b1: %d %s", code, body)
	}
	poll(t, 10*time.Second, "v2 at the live nodes", tm.orgVersions(2))
	tm.start("a2")
	tm.start("c1")
	took := poll(t, 20*time.Second, "v2 at the restarted nodes", tm.orgVersions(2))
	t.Logf("restarted nodes had v2 %v after their start", took)

	// The attacks: the old v1 again, a v3 signed by another CA, an
	// unsigned v3, garbage. Every node refuses each; none takes a v3.
	other := t.TempDir()
	otherCA, err := pki.Init(pki.InitOptions{Dir: other})
	if err != nil {
		t.Fatal(err)
	}
	forged := signWith(t, tm.orgFor(3, links), otherCA, filepath.Join(other, pki.CAKeyFile))
	s, err := orgdoc.Decode(forged)
	if err != nil {
		t.Fatal(err)
	}
	s.Signature = nil
	unsigned, _ := s.Encode()
	for _, n := range tm.live() {
		for _, a := range []struct {
			name string
			doc  []byte
			code int
		}{
			{"stale", v1, http.StatusConflict},
			{"bad_signature", forged, http.StatusForbidden},
			{"unsigned", unsigned, http.StatusForbidden},
			{"invalid", []byte(`{"document":{}}`), http.StatusBadRequest},
		} {
			if code, body := postOrg(n, a.doc); code != a.code {
				t.Fatalf("%s: POST %s: %d %s, want %d", n.cfg.Node.Name, a.name, code, body, a.code)
			}
			if got := counterOf(t, n, "meshd_org_documents_refused_total", "reason", a.name); got < 1 {
				t.Fatalf("%s: meshd_org_documents_refused_total{reason=%q} = %v", n.cfg.Node.Name, a.name, got)
			}
		}
	}
	// The refusals are synchronous and store nothing: no node holds
	// anything but v2.
	if err := tm.orgVersions(2)(); err != nil {
		t.Fatal(err)
	}

	// Status at a2: its group's member from gossip, rgb's bridgehead from
	// X-LINK2STATE (a2 is a source bridgehead of ab).
	poll(t, 10*time.Second, "org status at a2", func() error {
		rec := httptest.NewRecorder()
		tm.nodes["a2"].adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/org/status", nil))
		var st adminapi.OrgStatus
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			return err
		}
		by := map[string]adminapi.OrgNodeStatus{}
		for _, ns := range st.Nodes {
			by[ns.Node] = ns
		}
		if by["a1"].Source != "gossip" || by["a1"].Version != 2 || by["b1"].Source != "x-link2state" || by["b1"].Version != 2 {
			return fmt.Errorf("status %+v", st.Nodes)
		}
		return nil
	})
}

// Nodes started from short files (no routing groups, no connectors) learn
// their topology from a document; a new document that changes a cost and
// adds connectors is applied live: every node routes by it, and mail sent
// during the change is delivered exactly once.
func TestOrgDocumentAppliedLive(t *testing.T) {
	short := func(c *config.Config) { c.Mesh.RoutingGroups, c.Connectors = nil, nil }
	rgs := map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1"}, "rgc": {"c1"}}
	tm := newTestMeshWith(t, rgs, nil, short)
	line := []meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}, {"bc", "rgb", "rgc", 10}, {"cb", "rgc", "rgb", 10}}
	if code, body := postOrg(tm.nodes["a1"], tm.signOrg(t, tm.orgFor(1, line))); code != http.StatusOK {
		t.Fatalf("POST v1: %d %s", code, body)
	}
	for _, n := range []string{"a1", "a2"} {
		poll(t, 20*time.Second, n+" routes to rgc through rgb", tm.pathIs(n, "rgc.test", "rga>rgb>rgc"))
	}
	poll(t, 20*time.Second, "c1 routes to rga through rgb", tm.pathIs("c1", "rga.test", "rgc>rgb>rga"))

	// Mail flows while v2 makes rgb's connector to rgc dear and adds a
	// direct pair of connectors between rga and rgc.
	var ids []string
	send := func(from string, i int) {
		id := fmt.Sprintf("<live%d@test>", i)
		if err := tm.sendTo(from, "u@rgc.test", id); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
		ids = append(ids, id)
	}
	for i := range 10 {
		send([]string{"a1", "a2"}[i%2], i)
	}
	v2 := tm.orgFor(2, append([]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}, {"bc", "rgb", "rgc", 60}, {"cb", "rgc", "rgb", 10}},
		meshLink{"ac", "rga", "rgc", 15}, meshLink{"ca", "rgc", "rga", 15}))
	doc := tm.signOrg(t, v2)
	start := time.Now()
	if code, body := postOrg(tm.nodes["b1"], doc); code != http.StatusOK {
		t.Fatalf("POST v2: %d %s", code, body)
	}
	for i := 10; i < 20; i++ {
		send([]string{"a1", "a2"}[i%2], i)
	}
	poll(t, 20*time.Second, "every node routes by v2", func() error {
		for _, c := range []struct{ node, dom, path string }{
			{"a1", "rgc.test", "rga>rgc"}, {"a2", "rgc.test", "rga>rgc"}, {"c1", "rga.test", "rgc>rga"}, {"b1", "rgc.test", "rgb>rga>rgc"},
		} {
			if err := tm.pathIs(c.node, c.dom, c.path)(); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("v2 applied at b1: every node routes by it %v later", time.Since(start))
	for i := 20; i < 30; i++ {
		send([]string{"a1", "a2"}[i%2], i)
	}
	poll(t, 60*time.Second, "every message delivered once", func() error {
		got := tm.delivered("rgc")
		for _, id := range ids {
			if got[id] != 1 {
				return fmt.Errorf("%s delivered %d times", id, got[id])
			}
		}
		return nil
	})
}

// A node restarted on its data directory starts with the document it
// took: its short file is enough.
func TestOrgDocumentKeptOverRestart(t *testing.T) {
	short := func(c *config.Config) { c.Mesh.RoutingGroups, c.Connectors = nil, nil }
	tm := newTestMeshWith(t, map[string][]string{"rga": {"a1"}, "rgb": {"b1"}}, nil, short)
	links := []meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}}
	if code, body := postOrg(tm.nodes["a1"], tm.signOrg(t, tm.orgFor(1, links))); code != http.StatusOK {
		t.Fatalf("POST v1: %d %s", code, body)
	}
	poll(t, 20*time.Second, "b1 routes to rga", tm.pathIs("b1", "rga.test", "rgb>rga"))
	tm.crash("b1")
	tm.start("b1")
	if got := tm.nodes["b1"].live.Load().Connectors; len(got) != 1 || got[0].Name != "ba" {
		t.Fatalf("b1 restarted with connectors %+v, want ba from the document", got)
	}
	poll(t, 20*time.Second, "restarted b1 routes to rga", tm.pathIs("b1", "rga.test", "rgb>rga"))
}
