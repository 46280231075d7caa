package main_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
)

// pyDKIMVerify runs Debian's dkimverify (python3-dkim's dkim.dkimverify,
// reading the message on stdin) with dnspython's default resolver pointed
// at our dnsmasq: the public key comes from DNS, as for any verifier.
const pyDKIMVerify = `
import sys, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = ["127.0.0.1"]
r.port = int(sys.argv.pop(1))
dns.resolver.default_resolver = r
from dkim.dkimverify import main
main()
`

// dkimVerify verifies signature index of msg and returns dkimverify's
// output and whether it said "signature ok".
func dkimVerify(t *testing.T, dnsPort int, msg string, index int) (string, bool) {
	t.Helper()
	py := "/usr/bin/python3" // Debian's: python3-dkim is installed for it
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("%s not found (Debian package python3; run scripts/install-deps)", py)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", pyDKIMVerify, strconv.Itoa(dnsPort), "--index", strconv.Itoa(index))
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(out), "No module named") {
		t.Fatalf("dkimverify: %s (Debian package python3-dkim; run scripts/install-deps)", out)
	}
	return string(out), err == nil && strings.Contains(string(out), "signature ok")
}

// TestE2EDKIMSigning: keys made by `meshctl dkim keygen` (RSA and
// Ed25519, both for example.org), their TXT records served by dnsmasq;
// mail from example.org leaving by the smarthost carries both signatures
// and Debian's dkimverify accepts each against DNS; a tampered body, or
// a message whose From is another domain's, does not verify. A key file
// others may read is refused at start, naming the key.
func TestE2EDKIMSigning(t *testing.T) {
	keys := t.TempDir()
	txt := map[string]string{}
	for _, k := range []struct{ sel, alg string }{{"rsa1", "rsa"}, {"ed1", "ed25519"}} {
		out, code := meshctl(t, "-json", "dkim", "keygen", "-alg", k.alg, "-out", filepath.Join(keys, k.sel+".key"), "example.org", k.sel)
		if code != 0 {
			t.Fatalf("meshctl dkim keygen: exit %d\n%s", code, out)
		}
		v := regexp.MustCompile(`"txt": "([^"]+)"`).FindStringSubmatch(out)
		if v == nil {
			t.Fatalf("no TXT value in:\n%s", out)
		}
		txt[k.sel] = v[1]
		if fi, err := os.Stat(filepath.Join(keys, k.sel+".key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v %v, want mode 0600", fi, err)
		}
	}
	// dnsmasq: one TXT string per 255 bytes (the RSA key needs two).
	var recs []extern.Record
	for sel, v := range txt {
		var parts []string
		for len(v) > 255 {
			parts, v = append(parts, v[:255]), v[255:]
		}
		parts = append(parts, v)
		recs = append(recs, extern.TXT(sel+"._domainkey.example.org", strings.Join(parts, ",")))
	}
	dns := extern.StartDNSMasq(t, append(recs, extern.Local("example.org"))...)
	smart := startSink(t, 0)
	dkimCfg := map[string]any{"keys": []map[string]any{
		{"domain": "example.org", "selector": "rsa1", "key_file": filepath.Join(keys, "rsa1.key")},
		{"domain": "example.org", "selector": "ed1", "key_file": filepath.Join(keys, "ed1.key")},
	}}
	n := startNode(t, nodeOptions{AllowNetworks: []string{"127.0.0.0/8"}, Smarthost: smart.Addr, Reserved: []string{dns.Addr},
		Extra: map[string]any{"dkim": dkimCfg}})
	subject := uniq(t)
	for _, from := range []string{"alice@example.org", "alice@other.test"} {
		if out, code := swaks(t, "--server", n.SMTP, "--from", from, "--to", "bob@remote.test",
			"--header", "Subject: "+subject+" "+from, "--body", "Signed on the way out.\nSecond line.\n"); code != 0 {
			t.Fatalf("swaks: exit %d\n%s", code, out)
		}
	}
	signed, ok := smart.waitMessage(20*time.Second, "Subject: "+subject+" alice@example.org")
	if !ok {
		t.Fatalf("nothing reached the smarthost")
	}
	if c := strings.Count(signed, "DKIM-Signature:"); c != 2 {
		t.Fatalf("%d DKIM-Signature fields, want 2:\n%s", c, signed)
	}
	for i := 0; i < 2; i++ {
		out, ok := dkimVerify(t, dns.Port, signed, i)
		if !ok {
			t.Errorf("dkimverify --index %d: %s\nmessage:\n%s", i, out, signed)
		}
		t.Logf("dkimverify --index %d: %s", i, strings.TrimSpace(out))
	}
	// dnsmasq writes its query log after it answers: wait for both lines.
	askedBoth := func() bool {
		out := dns.Output()
		return strings.Contains(out, "rsa1._domainkey.example.org") && strings.Contains(out, "ed1._domainkey.example.org")
	}
	if !testkit.Poll(5*time.Second, askedBoth) {
		t.Errorf("dkimverify did not ask dnsmasq for both keys:\n%s", dns.Output())
	}
	tampered := strings.Replace(signed, "Second line.", "Second line!", 1)
	for i := 0; i < 2; i++ {
		// dkimverify raises dkim.ValidationError for a body that no longer
		// matches its signature's bh= (and exits non-zero).
		out, ok := dkimVerify(t, dns.Port, tampered, i)
		if ok || !strings.Contains(out, "body hash mismatch") {
			t.Errorf("tampered body, index %d: %s", i, out)
		}
		if i == 0 {
			t.Logf("tampered body: %s", strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]))
		}
	}
	other, ok := smart.waitMessage(20*time.Second, "Subject: "+subject+" alice@other.test")
	if !ok {
		t.Fatalf("the other domain's message did not arrive")
	}
	if strings.Contains(other, "DKIM-Signature:") {
		t.Errorf("mail from other.test was signed with example.org's keys:\n%s", other)
	}
	if v := n.metric(t, `meshd_dkim_signatures_total{domain="example.org",selector="ed1"}`); v != "1" {
		t.Errorf("meshd_dkim_signatures_total for ed1 = %q, want 1", v)
	}

	// A key file that others may read is refused, naming the key.
	if err := os.Chmod(filepath.Join(keys, "ed1.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = n.Stop()
	out, err := exec.Command(meshdBin, "-config", n.ConfigPath, "-check").CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("dkim.keys[1].key_file")) || !bytes.Contains(out, []byte("chmod 600")) {
		t.Fatalf("meshd -check with a 0644 key: %v\n%s", err, out)
	}
}
