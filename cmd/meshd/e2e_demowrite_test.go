package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/orgdoc"
)

// TestDemoWriteDeployment: `meshd demo -write DIR` writes a three-site
// deployment (a signed organisation document, three short node files,
// the CA and node keys 0600, README.txt); `meshd -check` accepts each
// file, three meshd processes started from exactly those files learn
// the topology from the document, and mail from rga to rgc sent with
// swaks is delivered exactly once.
func TestDemoWriteDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three meshd processes")
	}
	dir := filepath.Join(t.TempDir(), "deploy")
	out, err := exec.Command(meshdBin, "demo", "-write", dir, "-base", "0").CombinedOutput()
	if err != nil {
		t.Fatalf("meshd demo -write: %v\n%s", err, out)
	}
	t.Logf("meshd demo -write printed:\n%s", out)
	if again, err := exec.Command(meshdBin, "demo", "-write", dir, "-base", "0").CombinedOutput(); err == nil {
		t.Errorf("meshd demo -write over an existing deployment succeeded:\n%s", again)
	}

	// The document: signed, three sites, one node each, no secrets.
	raw, err := os.ReadFile(filepath.Join(dir, "org.signed"))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := orgdoc.Decode(raw)
	if err != nil {
		t.Fatalf("org.signed: %v", err)
	}
	if len(signed.Doc.RoutingGroups) != 3 || len(signed.Doc.Connectors) != 6 {
		t.Errorf("org.signed: %d routing groups, %d connectors; want 3 and 6", len(signed.Doc.RoutingGroups), len(signed.Doc.Connectors))
	}
	if out, err := exec.Command(meshdBin, "org", "check", filepath.Join(dir, "org.yaml")).CombinedOutput(); err != nil {
		t.Errorf("meshd org check org.yaml: %v\n%s", err, out)
	}
	// Private keys are the owner's only.
	keys, _ := filepath.Glob(filepath.Join(dir, "org", "*key*"))
	nodeKeys, _ := filepath.Glob(filepath.Join(dir, "org", "nodes", "*-key.pem"))
	keys = append(keys, nodeKeys...)
	if len(keys) < 6 { // ca-key, org.key, gossip.key, three node keys
		t.Errorf("keys written: %v", keys)
	}
	for _, k := range append(keys, filepath.Join(dir, "a1.yaml")) {
		st, err := os.Stat(k)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", k, st.Mode().Perm(), err)
		}
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.txt"))
	if err != nil {
		t.Fatal(err)
	}

	nodes := map[string]*meshNode{}
	for _, name := range []string{"a1", "b1", "c1"} {
		file := filepath.Join(dir, name+".yaml")
		if !strings.Contains(string(readme), "go run ./cmd/meshd -config "+file) {
			t.Errorf("README.txt does not say how to start %s", name)
		}
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(body), "routing_groups:") || strings.Contains(string(body), "\nconnectors:") {
			t.Errorf("%s is not a short file:\n%s", file, body)
		}
		if out, err := exec.Command(meshdBin, "-check", "-config", file).CombinedOutput(); err != nil {
			t.Errorf("meshd -check -config %s: %v\n%s", file, err, out)
		}
		smtp, admin := listenOf(t, string(body))
		n := &meshNode{t: t, Dir: t.TempDir(), ConfigPath: file, DataDir: filepath.Join(dir, name),
			Maildir: filepath.Join(dir, name, "maildir"), SMTP: smtp, Admin: admin, ready: smtp}
		t.Cleanup(func() {
			n.Kill()
			if t.Failed() {
				t.Logf("%s log:\n%s", name, n.logTail())
			}
		})
		n.Start()
		nodes[name] = n
	}
	// Every node routes by the document: rga reaches rgc over rgb (cost 20, not ac's 50).
	want := map[string][2]string{"a1": {"u@rgc.test", "rga>rgb>rgc"}, "c1": {"u@rga.test", "rgc>rgb>rga"}, "b1": {"u@rgc.test", "rgb>rgc"}}
	if !testkit.Poll(30*time.Second, func() bool {
		for name, w := range want {
			d, err := nodes[name].trace(w[0])
			if err != nil || strings.Join(d.Path, ">") != w[1] {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the written deployment does not route by its document")
	}
	subject := "Subject: " + uniq(t)
	if out, code := swaks(t, "--server", nodes["a1"].SMTP, "--from", "alice@rga.test", "--to", "bob@rgc.test", "--header", subject); code != 0 {
		t.Fatalf("swaks: exit %d\n%s", code, out)
	}
	md := nodes["c1"].Maildir
	waitMailbox(t, md, "bob@rgc.test", 60*time.Second, subject)
	nodes["a1"].waitQueueEmpty(30 * time.Second)
	nodes["b1"].waitQueueEmpty(30 * time.Second)
	n := 0
	for _, m := range mailbox(md, "bob@rgc.test") {
		if strings.Contains(m, subject) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("delivered %d times, want exactly once", n)
	}
}

// listenOf reads the smtp and admin addresses of a written node file.
func listenOf(t *testing.T, body string) (smtp, admin string) {
	t.Helper()
	field := func(key string) string {
		_, rest, ok := strings.Cut(body, key+`: "`)
		if !ok {
			t.Fatalf("node file without listen.%s:\n%s", key, body)
		}
		v, _, _ := strings.Cut(rest, `"`)
		return v
	}
	return field("smtp"), field("admin")
}
