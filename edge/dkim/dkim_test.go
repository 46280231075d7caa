package dkim

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

func writeKey(t *testing.T, dir, name, alg string, mode os.FileMode) (string, string) {
	t.Helper()
	pemData, key, err := Keygen(alg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := WriteKey(path, pemData); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	txt, err := TXTValue(key)
	if err != nil {
		t.Fatal(err)
	}
	return path, txt
}

// TestSignVerify: both signatures of a parent domain's keys verify (with
// go-msgauth's verifier; the e2e test uses Debian's), another domain's
// mail is left alone.
func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	edPath, edTXT := writeKey(t, dir, "ed", "ed25519", 0o600)
	rsaPath, rsaTXT := writeKey(t, dir, "rsa", "rsa", 0o400)
	cfg := Config{Keys: []Key{{Domain: "Example.org", Selector: "ed", KeyFile: edPath}, {Domain: "example.org", Selector: "rsa", KeyFile: rsaPath}}}
	if err := cfg.Validate("dkim"); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("Received: from x\r\nFrom: Alice <alice@mail.example.org>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nbody\r\n")
	out, used, err := s.Sign(msg)
	if err != nil || len(used) != 2 || !bytes.HasSuffix(out, msg) {
		t.Fatalf("sign: %v %v", used, err)
	}
	txt := map[string]string{"ed._domainkey.example.org": edTXT, "rsa._domainkey.example.org": rsaTXT}
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(out), &msgauth.VerifyOptions{LookupTXT: func(d string) ([]string, error) { return []string{txt[d]}, nil }})
	if err != nil || len(vs) != 2 {
		t.Fatalf("verify: %v %v", vs, err)
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("%s: %v", v.Domain, v.Err)
		}
	}
	other := []byte("From: eve@example.com\r\n\r\nx\r\n")
	if out, used, _ := s.Sign(other); len(used) != 0 || !bytes.Equal(out, other) {
		t.Fatalf("example.com mail signed: %v", used)
	}
	notSub := []byte("From: eve@badexample.org\r\n\r\nx\r\n")
	if _, used, _ := s.Sign(notSub); len(used) != 0 {
		t.Fatalf("badexample.org signed as example.org")
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good, _ := writeKey(t, dir, "good", "ed25519", 0o600)
	loose, _ := writeKey(t, dir, "loose", "ed25519", 0o640)
	junk := filepath.Join(dir, "junk")
	_ = os.WriteFile(junk, []byte("not pem"), 0o600)
	for _, tt := range []struct {
		k    Key
		want string
	}{
		{Key{Domain: "example", Selector: "s", KeyFile: good}, "dkim.keys[0].domain"},
		{Key{Domain: "example.org", Selector: "s_1", KeyFile: good}, "dkim.keys[0].selector"},
		{Key{Domain: "example.org", Selector: "s"}, "dkim.keys[0].key_file"},
		{Key{Domain: "example.org", Selector: "s", KeyFile: loose}, "dkim.keys[0].key_file"},
		{Key{Domain: "example.org", Selector: "s", KeyFile: junk}, "dkim.keys[0].key_file"},
		{Key{Domain: "example.org", Selector: "s", KeyFile: filepath.Join(dir, "missing")}, "dkim.keys[0].key_file"},
	} {
		c := Config{Keys: []Key{tt.k}}
		if err := c.Validate("dkim"); err == nil || !strings.Contains(err.Error(), tt.want+":") {
			t.Errorf("%+v: %v, want an error naming %s", tt.k, err, tt.want)
		}
	}
	dup := Config{Keys: []Key{{Domain: "example.org", Selector: "s", KeyFile: good}, {Domain: "example.org", Selector: "s", KeyFile: good}}}
	if err := dup.Validate("dkim"); err == nil || !strings.Contains(err.Error(), "dkim.keys[1].selector") {
		t.Errorf("duplicate: %v", err)
	}
}
