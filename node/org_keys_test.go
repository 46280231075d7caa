package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/orgdoc"
)

// A public key, and then a routing group, that a new document no longer
// names are forgotten at once: a record signed with the dropped key is
// refused by the running node, and the dropped group is unknown to it.
func TestOrgDocumentForgetsKeysLive(t *testing.T) {
	short := func(c *config.Config) { c.Mesh.RoutingGroups, c.Connectors = nil, nil }
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

// A domain a new document gives the node's group is accepted and
// delivered at once; one it takes away is no longer local.
func TestOrgDocumentDomainsLive(t *testing.T) {
	short := func(c *config.Config) { c.Mesh.RoutingGroups, c.Connectors = nil, nil }
	tm := newTestMeshWith(t, map[string][]string{"rga": {"a1"}}, nil, short)
	a1 := tm.nodes["a1"]
	doc := func(v uint64, domains ...string) []byte {
		d := tm.orgFor(v, nil)
		d.RoutingGroups[0].Domains = domains
		return tm.signOrg(t, d)
	}
	for v, domains := range [][]string{{"rga.test"}, {"rga.test", "new.test"}} {
		if code, body := postOrg(a1, doc(uint64(v+1), domains...)); code != http.StatusOK {
			t.Fatalf("POST v%d: %d %s", v+1, code, body)
		}
	}
	if !a1.policy.IsLocal("new.test") || !a1.policy.IsLocal("rga.test") {
		t.Fatal("v2 gives rga new.test, yet a1 does not take it as local")
	}
	if err := tm.sendTo("a1", "u@new.test", "<dom1@test>"); err != nil {
		t.Fatalf("mail for new.test: %v", err)
	}
	poll(t, 20*time.Second, "mail for new.test delivered once at a1", func() error {
		if n := tm.delivered("rga")["<dom1@test>"]; n != 1 {
			return fmt.Errorf("delivered %d times", n)
		}
		return nil
	})
	if code, body := postOrg(a1, doc(3, "rga.test")); code != http.StatusOK {
		t.Fatalf("POST v3: %d %s", code, body)
	}
	if a1.policy.IsLocal("new.test") || !a1.policy.IsLocal("rga.test") {
		t.Fatal("v3 takes new.test from rga, yet a1 still takes it as local (or lost rga.test)")
	}
}
