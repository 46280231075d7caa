package authres_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/edge/authres"
	"github.com/meshd/meshd/edge/dkim"
	"github.com/meshd/meshd/harness/extern"
)

// TestFieldAgainstDNS: a message signed by example.org's key, whose TXT
// record and DMARC policy dnsmasq serves, gets dkim=pass and dmarc=pass;
// the same message with its body changed gets dkim=fail and no DMARC
// claim; an unsigned one dkim=none.
func TestFieldAgainstDNS(t *testing.T) {
	dir := t.TempDir()
	pemData, key, err := dkim.Keygen("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "k")
	if err := dkim.WriteKey(path, pemData); err != nil {
		t.Fatal(err)
	}
	txt, _ := dkim.TXTValue(key)
	d := extern.StartDNSMasq(t, extern.TXT("s1._domainkey.example.org", txt), extern.TXT("_dmarc.example.org", "v=DMARC1; p=reject"), extern.Local("example.org"), extern.Local("example.net"))
	signer, err := dkim.New(dkim.Config{Keys: []dkim.Key{{Domain: "example.org", Selector: "s1", KeyFile: path}}})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nhello\r\n")
	signed, _, err := signer.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	c := &authres.Checker{AuthServID: "mx.example.net", Lookup: authres.NewLookup(d.Addr, 2*time.Second)}
	ctx := context.Background()
	f := c.Field(ctx, signed, authres.Client{})
	if !strings.HasPrefix(f, "Authentication-Results: mx.example.net;") || !strings.Contains(f, "dkim=pass") || !strings.Contains(f, "header.d=example.org") || !strings.Contains(f, "dmarc=pass") {
		t.Fatalf("signed: %q", f)
	}
	t.Logf("%s", f)
	bad := []byte(strings.Replace(string(signed), "hello", "HELLO", 1))
	if f := c.Field(ctx, bad, authres.Client{}); !strings.Contains(f, "dkim=fail") || strings.Contains(f, "dmarc=pass") {
		t.Fatalf("tampered: %q", f)
	}
	if f := c.Field(ctx, []byte("From: carol@example.net\r\n\r\nx\r\n"), authres.Client{}); !strings.Contains(f, "dkim=none") || !strings.Contains(f, "dmarc=none") {
		t.Fatalf("unsigned: %q", f)
	}
	_ = os.Remove(path)
}

// TestStrip: fields claiming our authserv-id go, in any case and
// spacing and when unparseable; others' stay, and so does the body.
func TestStrip(t *testing.T) {
	in := "Received: x\r\n" +
		"Authentication-Results: MX.example.net; dkim=pass header.d=bank.test\r\n" +
		"authentication-results:   mx.example.net;\r\n\tspf=pass\r\n" +
		"Authentication-Results: mx.example.net (forged) garbage ((\r\n" +
		"Authentication-Results: mx.other.test; dkim=pass\r\n" +
		"Subject: s\r\n\r\nAuthentication-Results: mx.example.net; body line\r\n"
	want := "Received: x\r\nAuthentication-Results: mx.other.test; dkim=pass\r\nSubject: s\r\n\r\nAuthentication-Results: mx.example.net; body line\r\n"
	if got := string(authres.Strip([]byte(in), "mx.example.net")); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

// FuzzStrip: stripping never grows a message and keeps everything after
// the header section.
func FuzzStrip(f *testing.F) {
	f.Add([]byte("Authentication-Results: a; none\r\n\r\nb"), "a")
	f.Add([]byte("Authentication-Results:\r\n\r\n"), "")
	f.Fuzz(func(t *testing.T, msg []byte, id string) {
		out := authres.Strip(msg, id)
		if len(out) > len(msg) {
			t.Fatalf("grew: %q -> %q", msg, out)
		}
		if i := strings.Index(string(msg), "\r\n\r\n"); i >= 0 && !strings.HasSuffix(string(out), string(msg[i+2:])) {
			t.Fatalf("body changed: %q -> %q", msg, out)
		}
	})
}
