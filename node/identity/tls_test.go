package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshd/meshd/node/config"
)

func TestSelfSignedCertGeneratedOnceAndKept(t *testing.T) {
	dir, host := t.TempDir(), "mx.test"
	c := config.TLS{SelfSigned: true}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	first, err := LoadTLS(c, dir, host, now)
	if err != nil {
		t.Fatal(err)
	}
	second, err := LoadTLS(c, dir, host, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	a, b := first.Certificates[0].Certificate[0], second.Certificates[0].Certificate[0]
	if !bytes.Equal(a, b) {
		t.Error("a second start generated a new certificate instead of reusing the stored one")
	}
	leaf, err := x509.ParseCertificate(a)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if err := leaf.VerifyHostname(host); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	st, err := os.Stat(filepath.Join(dir, "tls", selfSignedKey))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}

	c.SelfSigned = false
	if off, err := LoadTLS(c, dir, host, now); err != nil || off != nil {
		t.Errorf("self_signed false and no cert: got %v, %v; want no TLS", off, err)
	}
}
