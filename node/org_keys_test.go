package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/orgdoc"
)

// A public key, and then a routing group, that a new document no longer
// names are forgotten at once: a record signed with the dropped key is
// refused by the running node, and the dropped group is unknown to it.
func TestOrgDocumentForgetsKeysLive(t *testing.T) {
	short := func(c *Config) { c.Mesh.RoutingGroups, c.Connectors = nil, nil }
	tm := newTestMeshWith(t, map[string][]string{"rga": {"a1"}}, nil, short)
	a1 := tm.nodes["a1"]
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := linkstate.NewKeyring()
	if err := signer.SetSigningKey("rgx", "kx1", priv); err != nil {
		t.Fatal(err)
	}
	rec := &linkstate.Record{RG: "rgx", Version: linkstate.Version{Epoch: 1}, Master: "x1", IssuedAt: time.Now().Truncate(time.Second), TTL: time.Hour}
	if err := signer.Sign(rec); err != nil {
		t.Fatal(err)
	}
	doc := func(v uint64, keys []string, withX bool) []byte {
		d := tm.orgFor(v, nil)
		if withX {
			d.RoutingGroups = append(d.RoutingGroups, orgdoc.RoutingGroup{Name: "rgx", Domains: []string{"rgx.test"},
				PublicKeys: keys, Nodes: []orgdoc.Node{{Name: "x1", Mesh: "127.0.0.1:9"}}})
		}
		return tm.signOrg(t, d)
	}
	apply := func(v uint64, b []byte) {
		t.Helper()
		if code, body := postOrg(a1, b); code != http.StatusOK {
			t.Fatalf("POST v%d: %d %s", v, code, body)
		}
	}
	apply(1, doc(1, []string{"kx1:" + base64.StdEncoding.EncodeToString(pub)}, true))
	if err := a1.keyring.Verify(rec); err != nil {
		t.Fatalf("v1 names rgx's key kx1, yet its record does not verify: %v", err)
	}
	apply(2, doc(2, nil, true))
	if err := a1.keyring.Verify(rec); err == nil {
		t.Fatal("v2 no longer names kx1, yet a record signed with it verifies")
	} else if !errors.Is(err, linkstate.ErrUnknownKey) && !errors.Is(err, linkstate.ErrBadSignature) {
		t.Fatalf("v2: record signed with the dropped key: %v", err)
	}
	if !a1.keyring.Known("rgx") || !a1.keyring.Known("rga") {
		t.Fatal("v2 still names rgx and rga, yet the keyring does not know them")
	}
	apply(3, doc(3, nil, false))
	if a1.keyring.Known("rgx") {
		t.Fatal("v3 no longer names rgx, yet the keyring still knows it")
	}
	if !a1.keyring.Known("rga") {
		t.Fatal("v3: the node forgot its own group")
	}
}
