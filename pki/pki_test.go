package pki

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func initOrg(t *testing.T, alg string) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := Init(InitOptions{Dir: dir, Algorithm: alg}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func load(t *testing.T, dir, node, rg string, caDirs ...string) *Node {
	t.Helper()
	cert, key, err := Issue(IssueOptions{Dir: dir, Node: node, RG: rg})
	if err != nil {
		t.Fatal(err)
	}
	var cas []string
	for _, d := range append([]string{dir}, caDirs...) {
		f, err := CAFiles(d)
		if err != nil {
			t.Fatal(err)
		}
		cas = append(cas, f...)
	}
	n, err := Load(cas, cert, key, Identity{Node: node, RG: rg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// handshake runs one TLS handshake over a loopback socket and returns the
// client's error and the identity the server saw.
func handshake(t *testing.T, srv, cli *tls.Config) (Identity, bool, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		id Identity
		ok bool
	}
	got := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- res{}
			return
		}
		defer c.Close()
		tc := tls.Server(c, srv)
		if tc.Handshake() != nil {
			got <- res{}
			return
		}
		st := tc.ConnectionState()
		id, ok := PeerIdentity(&st)
		got <- res{id, ok}
		tc.Read(make([]byte, 1))
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cli)
	if err == nil {
		// TLS 1.3: the server's verdict on our certificate arrives with the first read.
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			err = nil
		}
		c.Close()
	}
	r := <-got
	return r.id, r.ok, err
}

func TestMutualTLS(t *testing.T) {
	for _, alg := range []string{Ed25519, ECDSAP256} {
		t.Run(alg, func(t *testing.T) {
			org := initOrg(t, alg)
			a := load(t, org, "a1", "rga")
			b := load(t, org, "b1", "rgb")
			id, ok, err := handshake(t, b.ServerConfig(), a.ClientConfig(func(id Identity) error {
				if id != (Identity{Node: "b1", RG: "rgb"}) {
					return errors.New("not b1")
				}
				return nil
			}))
			if err != nil || !ok || id != (Identity{Node: "a1", RG: "rga"}) {
				t.Fatalf("handshake: id %v ok %v err %v", id, ok, err)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	org, other := initOrg(t, Ed25519), initOrg(t, Ed25519)
	a := load(t, org, "a1", "rga")
	b := load(t, org, "b1", "rgb")
	x := load(t, other, "b1", "rgb") // same name, another CA: an intruder
	// Server with another CA's certificate: the client refuses it.
	if _, _, err := handshake(t, x.ServerConfig(), a.ClientConfig(nil)); err == nil {
		t.Fatal("client accepted a server certificate from another CA")
	}
	// Client with another CA's certificate: the server refuses it.
	if _, ok, err := handshake(t, b.ServerConfig(), x.ClientConfig(nil)); err == nil || ok {
		t.Fatalf("server accepted a client certificate from another CA: ok %v err %v", ok, err)
	}
	// Client without a certificate.
	noCert := &tls.Config{InsecureSkipVerify: true}
	if _, ok, err := handshake(t, b.ServerConfig(), noCert); err == nil || ok {
		t.Fatalf("server accepted a client without certificate: ok %v err %v", ok, err)
	}
	// Right CA, wrong node: the identity check refuses it.
	want := func(id Identity) error {
		if id.Node != "b2" {
			return errors.New("want b2")
		}
		return nil
	}
	if _, _, err := handshake(t, b.ServerConfig(), a.ClientConfig(want)); err == nil || !strings.Contains(err.Error(), "want b2") {
		t.Fatalf("identity check not applied: %v", err)
	}
}

func TestRolloverAndRenewal(t *testing.T) {
	org := initOrg(t, Ed25519)
	a := load(t, org, "a1", "rga")
	if _, err := Init(InitOptions{Dir: org, Next: true}); err != nil {
		t.Fatal(err)
	}
	files, _ := CAFiles(org)
	if len(files) != 2 {
		t.Fatalf("CA files after rollover: %v", files)
	}
	// b1 is issued by the new CA; a1 (old CA) trusts only the old one until
	// it reloads... so both load both CAs: they talk across the rollover.
	b := load(t, org, "b1", "rgb")
	if _, _, err := handshake(t, b.ServerConfig(), a.ClientConfig(nil)); err == nil {
		t.Fatal("a1 trusting only the old CA accepted the new CA's certificate")
	}
	a2 := load(t, org, "a1", "rga") // reissued by the new CA, trusts both
	if _, ok, err := handshake(t, b.ServerConfig(), a2.ClientConfig(nil)); err != nil || !ok {
		t.Fatalf("across the rollover: ok %v err %v", ok, err)
	}
	// Renewal: reissue b1's files; the running b picks them up.
	before := b.NotAfter()
	time.Sleep(10 * time.Millisecond) // a later mtime than the first file (coarse file systems)
	if _, _, err := Issue(IssueOptions{Dir: org, Node: "b1", RG: "rgb", Validity: 2 * DefaultNodeValidity}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Certificate(); err != nil {
		t.Fatal(err)
	}
	if !b.NotAfter().After(before) {
		t.Fatalf("renewed certificate not picked up: %v then %v", before, b.NotAfter())
	}
}

func TestExpiredCertificateRefused(t *testing.T) {
	old := time.Now().Add(-400 * 24 * time.Hour)
	org := t.TempDir()
	if _, err := Init(InitOptions{Dir: org, Now: old.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	a := load(t, org, "a1", "rga")
	cert, key, err := Issue(IssueOptions{Dir: org, Node: "b1", RG: "rgb", Now: old, Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	files, _ := CAFiles(org)
	if _, err := Load(files, cert, key, Identity{Node: "b1", RG: "rgb"}, nil); err == nil {
		t.Fatal("Load accepted an expired certificate")
	}
	b, err := Load(files, cert, key, Identity{Node: "b1", RG: "rgb"}, func() time.Time { return old.Add(time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	// Presented today, a's check refuses it.
	raw := [][]byte{mustLeaf(t, b).Leaf.Raw}
	if _, err := a.Verify(raw); err == nil {
		t.Fatal("Verify accepted an expired certificate")
	}
}

func mustLeaf(t *testing.T, n *Node) *tls.Certificate {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cert
}

func TestKeyFilesPrivate(t *testing.T) {
	org := initOrg(t, Ed25519)
	_, key, err := Issue(IssueOptions{Dir: org, Node: "a1", RG: "rga"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(org, CAKeyFile), filepath.Join(org, OrgKeyFile), filepath.Join(org, GossipKeyFile), key} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	if _, err := Init(InitOptions{Dir: org}); err == nil {
		t.Fatal("Init overwrote an existing organisation")
	}
}

func TestParseIdentityURI(t *testing.T) {
	good := map[string]Identity{"meshd://rga/a1": {"a1", "rga"}, "meshd://rg-1/n-2": {"n-2", "rg-1"}}
	for s, want := range good {
		if got, err := ParseIdentityURI(s); err != nil || got != want {
			t.Errorf("%q: %v %v", s, got, err)
		}
	}
	for _, s := range []string{"", "meshd://rga", "meshd://rga/", "meshd://rga/a1/x", "meshd://RGA/a1", "meshd://u@rga/a1",
		"meshd://rga:1/a1", "meshd://rga/a1?x", "meshd://rga/a%31", "https://rga/a1", "meshd:rga/a1", "meshd://-rg/a1"} {
		if id, err := ParseIdentityURI(s); err == nil {
			t.Errorf("%q accepted as %v", s, id)
		}
	}
}
