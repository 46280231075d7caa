package linkstate

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestKeyringVerify(t *testing.T) {
	k := testKeyring(t)
	otherPriv := ed25519.NewKeyFromSeed([]byte("meshd-linkstate-test-seed-000002"))

	signed := func(rg string) *Record {
		r := sampleRecord(rg)
		if err := k.Sign(r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name string
		rec  func() *Record
		want error
	}{
		{"ed25519 ok", func() *Record { return signed("rg1") }, nil},
		{"hmac ok", func() *Record { return signed("rg2") }, nil},
		{"unsigned", func() *Record { return sampleRecord("rg2") }, ErrUnsigned},
		{"unknown RG", func() *Record { r := signed("rg2"); r.RG = "zz"; fixFrom(r); return r }, ErrUnknownRG},
		{"content changed after signing", func() *Record { r := signed("rg2"); r.Version.Minor++; return r }, ErrBadSignature},
		{"ed25519 content changed", func() *Record { r := signed("rg1"); r.Connectors[0].Cost++; return r }, ErrBadSignature},
		{"flipped signature bit", func() *Record { r := signed("rg1"); r.Signature[5] ^= 1; return r }, ErrBadSignature},
		{"unknown key ID", func() *Record { r := signed("rg1"); r.KeyID = "k9"; return r }, ErrUnknownKey},
		{"HMAC for an RG with Ed25519 keys", func() *Record {
			r := sampleRecord("rg1")
			r.Signature = macOf(testOrgKey, mustSigningBytes(t, r))
			return r
		}, ErrBadSignature},
		{"signed by someone else's key", func() *Record {
			r := sampleRecord("rg1")
			r.KeyID = "k1"
			r.Signature = ed25519.Sign(otherPriv, mustSigningBytes(t, r))
			return r
		}, ErrBadSignature},
		{"HMAC with the wrong org key", func() *Record {
			r := sampleRecord("rg2")
			r.Signature = macOf([]byte("another org key, 32 bytes at least!"), mustSigningBytes(t, r))
			return r
		}, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := k.Verify(tt.rec())
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func fixFrom(r *Record) {
	for i := range r.Connectors {
		r.Connectors[i].From = r.RG
	}
}

func mustSigningBytes(t *testing.T, r *Record) []byte {
	t.Helper()
	b, err := SigningBytes(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeyringSign(t *testing.T) {
	k := testKeyring(t)
	if err := k.AddPublicKey("rg5", "k5", testPriv.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		rg, keyID string
		want      error
	}{
		{"rg1", "k1", nil},           // ours: Ed25519
		{"rg2", "", nil},             // no Ed25519 keys: org HMAC
		{"rg5", "", ErrNoSigningKey}, // Ed25519 keys bound, but not ours
	} {
		r := sampleRecord(tt.rg)
		err := k.Sign(r)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: Sign = %v, want %v", tt.rg, err, tt.want)
			continue
		}
		if err == nil && r.KeyID != tt.keyID {
			t.Errorf("%s: key ID %q, want %q", tt.rg, r.KeyID, tt.keyID)
		}
	}
	if err := NewKeyring().SetOrgKey([]byte("short")); err == nil {
		t.Error("short org key accepted")
	}
	if err := NewKeyring().Sign(sampleRecord("rg2")); !errors.Is(err, ErrNoSigningKey) {
		t.Errorf("empty keyring Sign = %v", err)
	}
}

// TestKeyRollover: while two keys are bound, records signed by either
// verify; after the old one is removed, its records are refused.
func TestKeyRollover(t *testing.T) {
	k := testKeyring(t)
	old := sampleRecord("rg1")
	if err := k.Sign(old); err != nil {
		t.Fatal(err)
	}
	newPriv := ed25519.NewKeyFromSeed([]byte("meshd-linkstate-test-seed-000003"))
	if err := k.SetSigningKey("rg1", "k2", newPriv); err != nil {
		t.Fatal(err)
	}
	nr := sampleRecord("rg1")
	if err := k.Sign(nr); err != nil || nr.KeyID != "k2" {
		t.Fatalf("Sign with new key: %v %q", err, nr.KeyID)
	}
	if err := k.Verify(old); err != nil {
		t.Errorf("old key during rollover: %v", err)
	}
	if err := k.Verify(nr); err != nil {
		t.Errorf("new key: %v", err)
	}
	k.RemovePublicKey("rg1", "k1")
	if err := k.Verify(old); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old key after rollover: %v", err)
	}
}
