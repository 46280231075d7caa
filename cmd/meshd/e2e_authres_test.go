package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/edge/dkim"
	"github.com/meshd/meshd/edge/milter/miltertest"
	"github.com/meshd/meshd/harness/extern"
)

// TestE2EAuthenticationResults: with authres.enabled, mail from outside
// gets one Authentication-Results field of the node's authserv-id, made
// from the DKIM key and DMARC policy dnsmasq serves (through
// outbound.dns_server); the milter behind it sees the field; a forged
// field claiming the node's authserv-id is removed, a field of another
// authserv-id is kept.
func TestE2EAuthenticationResults(t *testing.T) {
	dir := t.TempDir()
	pemData, key, err := dkim.Keygen("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "k")
	if err := dkim.WriteKey(keyFile, pemData); err != nil {
		t.Fatal(err)
	}
	txt, _ := dkim.TXTValue(key)
	dns := extern.StartDNSMasq(t, extern.TXT("s1._domainkey.sender.test", txt), extern.TXT("_dmarc.sender.test", "v=DMARC1; p=reject"), extern.Local("sender.test"))
	m := miltertest.Start(t, "after")
	n := startNode(t, nodeOptions{DNSServer: dns.Addr, Reserved: []string{dns.Addr}, Extra: map[string]any{
		"authres": map[string]any{"enabled": true},
		"filters": map[string]any{"milters": []map[string]any{{"name": "after", "address": m.Addr}}},
	}})
	signer, err := dkim.New(dkim.Config{Keys: []dkim.Key{{Domain: "sender.test", Selector: "s1", KeyFile: keyFile}}})
	if err != nil {
		t.Fatal(err)
	}
	subject := uniq(t)
	msg := "From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@sender.test>\r\n\r\nSigned at the sender.\r\n"
	signed, _, err := signer.Sign([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	forged := "Authentication-Results: mx.e2e.meshd.test; dkim=pass header.d=bank.test\r\n" +
		"Authentication-Results: relay.elsewhere.test; spf=pass smtp.mailfrom=sender.test\r\n" + string(signed)
	file := filepath.Join(dir, "msg.eml")
	if err := os.WriteFile(file, []byte(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := swaks(t, "--server", n.SMTP, "--from", "alice@sender.test", "--to", "bob@example.test", "--data", file); code != 0 {
		t.Fatalf("swaks: exit %d\n%s", code, out)
	}
	got := waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+subject)
	if c := strings.Count(got, "Authentication-Results: mx.e2e.meshd.test;"); c != 1 {
		t.Errorf("%d fields of our authserv-id, want 1 (ours):\n%s", c, got)
	}
	if strings.Contains(got, "bank.test") {
		t.Errorf("the forged field survived:\n%s", got)
	}
	for _, want := range []string{"dkim=pass header.d=sender.test", "dmarc=pass header.from=sender.test", "Authentication-Results: relay.elsewhere.test;"} {
		if !strings.Contains(got, want) {
			t.Errorf("delivered message lacks %q:\n%s", want, got)
		}
	}
	seen := m.Seen()
	if len(seen) != 1 || !strings.Contains(strings.Join(seen[0].Headers["Authentication-Results"], "\n"), "dkim=pass header.d=sender.test") {
		t.Errorf("the milter did not see our field: %+v", seen)
	}
}

// TestE2ESPF: SPF in the node's Authentication-Results (RFC 7208, RFC
// 8601 smtp.mailfrom and smtp.helo) from records dnsmasq serves: swaks
// connects from 127.0.0.1, inside sender.test's policy and its HELO
// name's, so both pass and DMARC passes by SPF alignment alone (the mail
// is unsigned); from other.test, whose policy names another address,
// SPF fails and so does DMARC.
func TestE2ESPF(t *testing.T) {
	dns := extern.StartDNSMasq(t,
		extern.TXT("sender.test", "v=spf1 ip4:127.0.0.1 -all"),
		extern.TXT("_dmarc.sender.test", "v=DMARC1; p=reject"),
		extern.TXT("client.sender.test", "v=spf1 a -all"),
		extern.Host("client.sender.test", "127.0.0.1"),
		extern.TXT("other.test", "v=spf1 ip4:192.0.2.1 -all"),
		extern.TXT("_dmarc.other.test", "v=DMARC1; p=quarantine"),
		extern.Local("sender.test"), extern.Local("other.test"))
	n := startNode(t, nodeOptions{DNSServer: dns.Addr, Reserved: []string{dns.Addr}, Extra: map[string]any{
		"authres": map[string]any{"enabled": true},
	}})
	send := func(from string) string {
		subject := uniq(t)
		if out, code := swaks(t, "--server", n.SMTP, "--helo", "client.sender.test", "--from", from, "--to", "bob@example.test",
			"--header", "From: "+from, "--header", "Subject: "+subject, "--body", "unsigned\n"); code != 0 {
			t.Fatalf("swaks: exit %d\n%s", code, out)
		}
		return waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+subject)
	}
	got := send("alice@sender.test")
	for _, want := range []string{"spf=pass smtp.mailfrom=alice@sender.test", "spf=pass smtp.helo=client.sender.test", "dkim=none", "dmarc=pass header.from=sender.test"} {
		if !strings.Contains(got, want) {
			t.Errorf("sender.test: delivered message lacks %q:\n%s", want, got)
		}
	}
	got = send("mallory@other.test")
	for _, want := range []string{"spf=fail smtp.mailfrom=mallory@other.test", "spf=pass smtp.helo=client.sender.test", "dmarc=fail header.from=other.test"} {
		if !strings.Contains(got, want) {
			t.Errorf("other.test: delivered message lacks %q:\n%s", want, got)
		}
	}
}
