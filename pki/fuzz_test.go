package pki

import (
	"crypto/x509"
	"testing"
)

// FuzzParseIdentityURI: any string either fails or yields an identity
// whose URI parses back to itself.
func FuzzParseIdentityURI(f *testing.F) {
	for _, s := range []string{"meshd://rga/a1", "meshd://rga/a1/", "meshd://rg%41/a1", "meshd://a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentityURI(s)
		if err != nil {
			return
		}
		back, err := ParseIdentityURI(id.URI().String())
		if err != nil || back != id {
			t.Fatalf("%q -> %v -> %q -> %v %v", s, id, id.URI(), back, err)
		}
		if id.URI().String() != s {
			t.Fatalf("%q is not the canonical form %q", s, id.URI())
		}
	})
}

// FuzzParseIdentity: peer certificates are untrusted DER until verified;
// parsing one never panics.
func FuzzParseIdentity(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		_, _ = ParseIdentity(c)
	})
}
