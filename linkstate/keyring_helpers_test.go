package linkstate

import (
	"crypto/ed25519"
	"testing"
)

var (
	testOrgKey = []byte("0123456789abcdef0123456789abcdef-org")
	// rg1 signs with Ed25519 (deterministic seed), every other RG with the
	// org HMAC key.
	testPriv = ed25519.NewKeyFromSeed([]byte("meshd-linkstate-test-seed-000001"))
)

// testKeyring knows rg0..rg9, peer1..peer4 and x; rg1 is "ours" with an
// Ed25519 key "k1".
func testKeyring(t testing.TB) *Keyring {
	t.Helper()
	k := NewKeyring()
	if err := k.SetOrgKey(testOrgKey); err != nil {
		t.Fatal(err)
	}
	for _, rg := range []string{"rg0", "rg2", "rg3", "rg4", "rg5", "rg6", "rg7", "rg8", "rg9", "peer1", "peer2", "peer3", "peer4", "x"} {
		if err := k.AddRG(rg); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.SetSigningKey("rg1", "k1", testPriv); err != nil {
		t.Fatal(err)
	}
	return k
}
