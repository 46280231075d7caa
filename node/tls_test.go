package node

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedCertGeneratedOnceAndKept(t *testing.T) {
	cfg := testConfig(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	first, err := loadTLS(cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	second, err := loadTLS(cfg, now.Add(time.Hour))
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
	if err := leaf.VerifyHostname(cfg.Node.Hostname); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	st, err := os.Stat(filepath.Join(cfg.Node.DataDir, "tls", selfSignedKey))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}

	cfg.TLS.SelfSigned = false
	if off, err := loadTLS(cfg, now); err != nil || off != nil {
		t.Errorf("self_signed false and no cert: got %v, %v; want no TLS", off, err)
	}
}
