package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

// TestExamplesThreeSite starts examples/three-site exactly as shipped (a copy of the directory,
// `sh make-pki` for the certificates, then one meshd per file, run from it as its header says)
// and sends mail with swaks from site a to sites b and c and from c to a: each message lands once in its site's Maildir, relayed over
// the connectors the files declare.
func TestExamplesThreeSite(t *testing.T) {
	src := filepath.Join("..", "..", "examples", "three-site")
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(src, "*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("examples/three-site: want 3 node files, got %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// As the files' header says: sh make-pki once, then one meshd per file.
	mk, err := os.ReadFile(filepath.Join(src, "make-pki"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "make-pki"), mk, 0o755); err != nil {
		t.Fatal(err)
	}
	pki := exec.Command("sh", "make-pki")
	pki.Dir, pki.Env = dir, append(os.Environ(), "MESHD="+meshdBin)
	if out, err := pki.CombinedOutput(); err != nil {
		t.Fatalf("sh make-pki: %v\n%s", err, out)
	}
	smtpAddr := map[string]string{"a1": "127.0.1.1:2525", "b1": "127.0.2.1:2525", "c1": "127.0.3.1:2525"}
	for _, name := range []string{"a1", "b1", "c1"} {
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(meshdBin, "-config", name+".yaml")
		cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("%s log:\n%s", name, tail(b, 4<<10))
			}
		})
		if !testkit.Poll(20*time.Second, func() bool { return smtpGreets(smtpAddr[name]) == nil }) {
			t.Fatalf("%s does not answer on %s", name, smtpAddr[name])
		}
	}
	subject := uniq(t)
	sends := []struct{ from, server, rcpt, site string }{
		{"alice@rga.example.test", smtpAddr["a1"], "bob@rgb.example.test", "b1"},
		{"alice@rga.example.test", smtpAddr["a1"], "carol@rgc.example.test", "c1"},
		{"carol@rgc.example.test", smtpAddr["c1"], "alice@rga.example.test", "a1"},
	}
	for i, s := range sends {
		// Until the link-state records have flooded a node may not know a route yet: it
		// queues the message and routes it when they arrive, so a single send is enough.
		out, code := swaks(t, "--server", s.server, "--from", s.from, "--to", s.rcpt,
			"--header", "Subject: "+subject+"-"+string(rune('0'+i)))
		if code != 0 {
			t.Fatalf("swaks %s -> %s: exit %d\n%s", s.from, s.rcpt, code, out)
		}
	}
	for i, s := range sends {
		md := filepath.Join(dir, "data", s.site, "maildir")
		waitMailbox(t, md, s.rcpt, 60*time.Second, "Subject: "+subject+"-"+string(rune('0'+i)))
		var n int
		for _, m := range mailbox(md, s.rcpt) {
			if strings.Contains(m, "Subject: "+subject+"-"+string(rune('0'+i))) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d copies, want exactly 1", s.rcpt, n)
		}
	}
}
