package orgdoc

import (
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/pki"
)

func readDoc(t *testing.T) *Document {
	t.Helper()
	src, err := os.ReadFile("testdata/three-site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParse(t *testing.T) {
	d := readDoc(t)
	if d.Version != 1 || len(d.RoutingGroups) != 3 || len(d.Connectors) != 5 {
		t.Fatalf("parsed %+v", d)
	}
	if d.Settings.TTL != time.Hour || d.Settings.Damping.HalfLife != 10*time.Minute {
		t.Fatalf("settings %+v", d.Settings)
	}
	// Canonical order: connectors by (from, name), "*.c.example" before "c.example".
	if c := d.Connectors[0]; c.From != "rga" || c.Name != "internet" {
		t.Fatalf("first connector %+v", c)
	}
	if g, _ := d.Group("rgc"); g.Domains[0] != "*.c.example" {
		t.Fatalf("domains %v", g.Domains)
	}
	if tn := d.TargetNodes(d.Connectors[1]); len(tn) != 1 || tn[0].Name != "b1" {
		t.Fatalf("targets of %+v: %+v", d.Connectors[1], tn)
	}
}

// Every refusal names its key and the line it is on.
func TestParseErrors(t *testing.T) {
	base, err := os.ReadFile("testdata/three-site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string {
		if !strings.Contains(string(base), old) {
			t.Fatalf("testdata has no %q", old)
		}
		return strings.Replace(string(base), old, new, 1)
	}
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown key", edit("comment:", "coment:"), "line 4: coment: unknown key"},
		{"bad type", edit("cost: 10", "cost: ten"), "line 30: connectors[4].cost: must be a whole number"},
		{"bad duration", edit("ttl: 1h", "ttl: soon"), "line 6: settings.ttl: must be a duration"},
		{"unknown group", edit("from: rgb, to: rgc", "from: rgb, to: rgz"), `line 26: connectors[2].to: routing group "rgz" is not in routing_groups`},
		{"foreign target", edit("target_bridgeheads: [c1]", "target_bridgeheads: [b1]"), `line 26: connectors[2].target_bridgeheads[0]: "b1" is not a node of routing group "rgc"`},
		{"foreign source", edit("source_bridgeheads: [c1]", "source_bridgeheads: [a1]"), `line 27: connectors[3].source_bridgeheads[0]: "a1" is not a node of routing group "rgc"`},
		{"duplicate name", edit("name: to-a, from: rgb", "name: to-c, from: rgb"), `line 26: connectors[2].name: connector "to-c" of "rgb" is listed twice`},
		{"duplicate connector", edit("{name: to-a, from: rgb, to: rga, cost: 1}", "{name: to-a, from: rga, to: rgb, cost: 2}"), "line 25: connectors[1]: repeats connectors[0]"},
		{"cost", edit("cost: 10", "cost: 101"), "line 30: connectors[4].cost: must be 1..100"},
		{"loop", edit("from: rga, to: rgb", "from: rga, to: rga"), "line 24: connectors[0].to: a connector leads to another routing group"},
		{"node address", edit(`mesh: "127.0.0.1:2602"`, `mesh: "0.0.0.0:2602"`), "line 18: routing_groups[1].nodes[0].mesh: needs a host others can dial"},
		{"no mesh address", edit(`{name: b1, mesh: "127.0.0.1:2602"}`, `{name: b1}`), "line 18: routing_groups[1].nodes[0].mesh: required"},
		{"domain twice", edit("domains: [b.example]", "domains: [a.example]"), `line 16: routing_groups[1].domains[0]: domain "a.example" already belongs to routing group "rga"`},
		{"group twice", edit("name: rgb", "name: rga"), `line 15: routing_groups[1].name: routing group "rga" is listed twice`},
		{"refresh", edit("refresh: 30m", "refresh: 2h"), "line 7: settings.refresh: must be shorter than settings.ttl"},
		{"damping", edit("half_life: 10m", "half_life: 10ms"), "line 8: settings.damping: linkstate: damping: half-life"},
		{"external target", edit("smarthost:", "target_bridgeheads: [a1]\n    smarthost:"), "line 31: connectors[4].target_bridgeheads: belong to a connector"},
		{"pattern", edit(`pattern: "*"`, `pattern: "a.*"`), "line 33: connectors[4].address_spaces[0].pattern: must be a domain"},
		{"public key", edit("domains: [b.example]", "domains: [b.example]\n    public_keys: [k1:AAAA]"), "line 17: routing_groups[1].public_keys[0]: must be keyid:base64"},
		{"key twice", edit("comment: first", "version: 2\ncomment: first"), "line 4: version: given twice"},
		{"no groups", "version: 1\n", "routing_groups: must list at least one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newCA(t *testing.T, dir, alg string, next bool) ca {
	t.Helper()
	path, err := pki.Init(pki.InitOptions{Dir: dir, Algorithm: alg, Next: next})
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.ReadCA(path, strings.TrimSuffix(path, ".pem")+"-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	return ca{cert, key}
}

func TestSignVerify(t *testing.T) {
	now := time.Now()
	for _, alg := range []string{pki.Ed25519, pki.ECDSAP256} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			old := newCA(t, dir, alg, false)
			next := newCA(t, dir, alg, true)
			other := newCA(t, t.TempDir(), alg, false)
			d := readDoc(t)
			s, err := Sign(*d, next.cert, next.key, now)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := s.Encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			// During a rollover both CAs are trusted; the new one signed.
			if err := got.Verify([]*x509.Certificate{old.cert, next.cert}, now); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if err := got.Verify([]*x509.Certificate{old.cert}, now); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("verify without the signing CA: %v", err)
			}
			// Another organisation's CA cannot sign for this one, even
			// when it claims this one's fingerprint.
			forged, err := Sign(*d, other.cert, other.key, now)
			if err != nil {
				t.Fatal(err)
			}
			forged.Signer = Fingerprint(next.cert)
			if err := forged.Verify([]*x509.Certificate{old.cert, next.cert}, now); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("forged: %v", err)
			}
			// A changed cost breaks the signature.
			got.Doc.Connectors[1].Cost = 99
			if err := got.Verify([]*x509.Certificate{next.cert}, now); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("tampered: %v", err)
			}
			got.Signature = nil
			if err := got.Verify([]*x509.Certificate{next.cert}, now); !errors.Is(err, ErrUnsigned) {
				t.Fatalf("unsigned: %v", err)
			}
			if _, err := Sign(*d, next.cert, old.key, now); err == nil {
				t.Fatal("signed with a key that is not the certificate's")
			}
			if err := s.Verify([]*x509.Certificate{next.cert}, next.cert.NotAfter.Add(time.Hour)); err == nil {
				t.Fatal("verified with an expired CA")
			}
		})
	}
}

func TestDecodeCanonical(t *testing.T) {
	c := newCA(t, t.TempDir(), pki.Ed25519, false)
	s, err := Sign(*readDoc(t), c.cert, c.key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := s.Encode()
	for name, b := range map[string]string{
		"space":          strings.Replace(string(raw), `"version":1`, `"version": 1`, 1),
		"case":           strings.Replace(string(raw), `"version":1`, `"Version":1`, 1),
		"unknown":        strings.Replace(string(raw), `"version":1`, `"version":1,"x":1`, 1),
		"trailing":       string(raw) + "{}",
		"order":          strings.Replace(string(raw), `"name":"rga"`, `"name":"rgz"`, 1),
		"version 0":      strings.Replace(string(raw), `"version":1`, `"version":0`, 1),
		"bad reference":  strings.Replace(string(raw), `"to":"rgb"`, `"to":"rgq"`, 1),
		"too big":        string(raw) + strings.Repeat(" ", MaxEncoded),
		"unsorted lists": strings.Replace(string(raw), `"domains":["*.c.example","c.example"]`, `"domains":["c.example","*.c.example"]`, 1),
	} {
		if b == string(raw) {
			t.Fatalf("%s: edit did not apply", name)
		}
		if _, err := Decode([]byte(b)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestStore(t *testing.T) {
	c := newCA(t, t.TempDir(), pki.Ed25519, false)
	cas := []*x509.Certificate{c.cert}
	now := time.Now()
	d := readDoc(t)
	enc := func(v uint64, cost uint32) []byte {
		d := *d
		d.Version = v
		d.Connectors = append([]Connector(nil), d.Connectors...)
		d.Connectors[1].Cost = cost
		s, err := Sign(d, c.cert, c.key, now)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := s.Encode()
		return b
	}
	dir := filepath.Join(t.TempDir(), "org")
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Current(); s != nil {
		t.Fatal("new store has a document")
	}
	v2 := enc(2, 5)
	if _, fresh, err := st.Offer(v2, cas, now); err != nil || !fresh {
		t.Fatalf("offer v2: %v %v", fresh, err)
	}
	if _, fresh, err := st.Offer(v2, cas, now); err != nil || fresh {
		t.Fatalf("offer v2 again: %v %v", fresh, err)
	}
	if _, _, err := st.Offer(enc(1, 5), cas, now); !errors.Is(err, ErrStale) {
		t.Fatalf("offer v1: %v", err)
	}
	if _, _, err := st.Offer(enc(2, 7), cas, now); !errors.Is(err, ErrConflict) {
		t.Fatalf("offer another v2: %v", err)
	}
	other := newCA(t, t.TempDir(), pki.Ed25519, false)
	d3 := *d
	d3.Version = 3
	forged, _ := Sign(d3, other.cert, other.key, now)
	fb, _ := forged.Encode()
	if _, _, err := st.Offer(fb, cas, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("offer forged v3: %v", err)
	}
	if _, _, err := st.Offer(enc(3, 9), cas, now); err != nil {
		t.Fatal(err)
	}
	// Reopened (a restart), the store has v3 in force and both versions.
	st, err = OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version() != 3 || len(st.History()) != 2 {
		t.Fatalf("reopened: version %d history %v", st.Version(), st.History())
	}
	old, err := st.Get(2)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := st.Current()
	diff := Diff(&old.Doc, &cur.Doc)
	if len(diff) != 2 || diff[1] != "~ connector rga/to-b: cost 5 -> 9" {
		t.Fatalf("diff %q", diff)
	}
}
