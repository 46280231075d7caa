package orgdoc

import (
	"bytes"
	"crypto/x509"
	"os"
	"testing"
	"time"
)

// FuzzDecode: a signed document arrives from peers (port 691,
// X-LINK2STATE, the admin API). Whatever decodes is canonical and
// verifies or not without a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"document":{"version":1},"signer":"sha256:00","signature":"AA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			return
		}
		again, err := s.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded %q re-encodes as %q (%v)", b, again, err)
		}
		if err := s.Verify([]*x509.Certificate{{}}, time.Now()); err == nil {
			t.Fatal("verified against an empty CA")
		}
	})
}

// FuzzParse: org.yaml is an operator's file; a broken one is refused
// with an error, never a panic, and what parses validates.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/three-site.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("version: 1\nrouting_groups: [{name: a, nodes: [{name: n, mesh: 'h:1'}]}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("parsed but does not validate: %v", err)
		}
	})
}
