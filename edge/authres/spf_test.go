package authres_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/edge/authres"
	"github.com/meshd/meshd/harness/extern"
)

// zone is an in-memory DNS for SPF (spf.DNSResolver): names are
// lower-case without the final dot. It records every query.
type zone struct {
	txt     map[string][]string
	a       map[string][]string
	mx      map[string][]string
	ptr     map[string][]string // keyed by address
	failing map[string]bool     // SERVFAIL
	mu      sync.Mutex
	asked   []string
}

func (z *zone) ask(kind, name string) error {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	z.mu.Lock()
	z.asked = append(z.asked, kind+" "+name)
	z.mu.Unlock()
	if z.failing[name] {
		return &net.DNSError{Err: "server failure", Name: name, IsTemporary: true}
	}
	return nil
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func key(name string) string { return strings.TrimSuffix(strings.ToLower(name), ".") }

func (z *zone) LookupTXT(_ context.Context, name string) ([]string, error) {
	if err := z.ask("TXT", name); err != nil {
		return nil, err
	}
	if v, ok := z.txt[key(name)]; ok {
		return v, nil
	}
	return nil, notFound(name)
}

func (z *zone) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if err := z.ask("MX", name); err != nil {
		return nil, err
	}
	var out []*net.MX
	for i, h := range z.mx[key(name)] {
		out = append(out, &net.MX{Host: h + ".", Pref: uint16(10 * (i + 1))})
	}
	if len(out) == 0 {
		return nil, notFound(name)
	}
	return out, nil
}

func (z *zone) LookupIPAddr(_ context.Context, name string) ([]net.IPAddr, error) {
	if err := z.ask("A", name); err != nil {
		return nil, err
	}
	var out []net.IPAddr
	for _, a := range z.a[key(name)] {
		out = append(out, net.IPAddr{IP: net.ParseIP(a)})
	}
	if len(out) == 0 {
		return nil, notFound(name)
	}
	return out, nil
}

func (z *zone) LookupAddr(_ context.Context, addr string) ([]string, error) {
	if err := z.ask("PTR", addr); err != nil {
		return nil, err
	}
	var out []string
	for _, n := range z.ptr[addr] {
		out = append(out, n+".")
	}
	if len(out) == 0 {
		return nil, notFound(addr)
	}
	return out, nil
}

// rfc7208Zone is the zone of RFC 7208 Appendix A, with the policy of
// example.com set to policy.
func rfc7208Zone(policy string) *zone {
	return &zone{
		txt: map[string][]string{"example.com": {policy}},
		a: map[string][]string{
			"example.com": {"192.0.2.10", "192.0.2.11"}, "amy.example.com": {"192.0.2.65"},
			"bob.example.com": {"192.0.2.66"}, "mail-a.example.com": {"192.0.2.129"},
			"mail-b.example.com": {"192.0.2.130"}, "mail-c.example.org": {"192.0.2.140"},
		},
		mx: map[string][]string{"example.com": {"mail-a.example.com", "mail-b.example.com"}, "example.org": {"mail-c.example.org"}},
		ptr: map[string][]string{
			"192.0.2.10": {"example.com"}, "192.0.2.11": {"example.com"}, "192.0.2.65": {"amy.example.com"},
			"192.0.2.66": {"bob.example.com"}, "192.0.2.129": {"mail-a.example.com"}, "192.0.2.130": {"mail-b.example.com"},
			"192.0.2.140": {"mail-c.example.org"}, "10.0.0.4": {"bob.example.com"},
		},
	}
}

// spfOf returns the spf= result for the MAIL FROM identity in a field.
func spfOf(t *testing.T, f string) string {
	t.Helper()
	for _, part := range strings.Split(f, ";") {
		part = strings.TrimSpace(part)
		if strings.HasPrefix(part, "spf=") && strings.Contains(part, "smtp.mailfrom=") {
			v, _, _ := strings.Cut(strings.TrimPrefix(part, "spf="), " ")
			return v
		}
	}
	t.Fatalf("no spf result for smtp.mailfrom in %q", f)
	return ""
}

const plainMsg = "From: someone@example.com\r\nSubject: x\r\n\r\nbody\r\n"

func checkWith(t *testing.T, z *zone, ip, mailFrom string) string {
	t.Helper()
	c := &authres.Checker{AuthServID: "mx.test", Lookup: func(context.Context, string) ([]string, error) { return nil, notFound("x") }, Resolver: z}
	return c.Field(context.Background(), []byte(plainMsg), authres.Client{IP: net.ParseIP(ip), Helo: "client.example.net", MailFrom: mailFrom})
}

// TestSPFRFC7208Examples: the policies of RFC 7208 Appendix A.1, each
// against the hosts the appendix says pass and some it says do not.
func TestSPFRFC7208Examples(t *testing.T) {
	for _, tt := range []struct {
		policy     string
		pass, fail []string
	}{
		{"v=spf1 +all", []string{"192.0.2.10", "10.0.0.4"}, nil},
		{"v=spf1 a -all", []string{"192.0.2.10", "192.0.2.11"}, []string{"192.0.2.65", "192.0.2.129"}},
		{"v=spf1 a:example.org -all", nil, []string{"192.0.2.10", "192.0.2.140"}},
		{"v=spf1 mx -all", []string{"192.0.2.129", "192.0.2.130"}, []string{"192.0.2.10", "192.0.2.140"}},
		{"v=spf1 mx:example.org -all", []string{"192.0.2.140"}, []string{"192.0.2.129"}},
		{"v=spf1 mx mx:example.org -all", []string{"192.0.2.129", "192.0.2.130", "192.0.2.140"}, []string{"192.0.2.10"}},
		{"v=spf1 mx/30 mx:example.org/30 -all", []string{"192.0.2.128", "192.0.2.131", "192.0.2.141"}, []string{"192.0.2.127", "192.0.2.144"}},
		{"v=spf1 ptr -all", []string{"192.0.2.65", "192.0.2.10"}, []string{"192.0.2.140", "10.0.0.4"}},
		{"v=spf1 ip4:192.0.2.128/28 -all", []string{"192.0.2.129", "192.0.2.143"}, []string{"192.0.2.65", "192.0.2.144"}},
	} {
		for _, ip := range tt.pass {
			if got := spfOf(t, checkWith(t, rfc7208Zone(tt.policy), ip, "alice@example.com")); got != "pass" {
				t.Errorf("%q from %s: spf=%s, want pass", tt.policy, ip, got)
			}
		}
		for _, ip := range tt.fail {
			if got := spfOf(t, checkWith(t, rfc7208Zone(tt.policy), ip, "alice@example.com")); got != "fail" {
				t.Errorf("%q from %s: spf=%s, want fail", tt.policy, ip, got)
			}
		}
	}
}

// TestSPFResults: every result, include, redirect, exists with macros
// (RFC 7208 §7.4's examples, seen in the names queried), the limits of
// ten lookups and two void lookups (§4.6.4), ip6, and the field's
// smtp.mailfrom and smtp.helo properties.
func TestSPFResults(t *testing.T) {
	z := rfc7208Zone("v=spf1 -all")
	z.txt["none.example"] = nil
	z.txt["neutral.example"] = []string{"v=spf1 ?all"}
	z.txt["soft.example"] = []string{"v=spf1 ~all"}
	z.txt["broken.example"] = []string{"v=spf1 ip4:300.1.1.1 -all"}
	z.txt["two.example"] = []string{"v=spf1 -all", "v=spf1 +all"}
	z.txt["inc.example"] = []string{"v=spf1 include:example.org -all"}
	z.txt["example.org"] = []string{"v=spf1 mx -all"}
	z.txt["redir.example"] = []string{"v=spf1 redirect=example.org"}
	z.txt["six.example"] = []string{"v=spf1 ip6:2001:db8::/32 -all"}
	z.txt["email.example.com"] = []string{"v=spf1 exists:%{ir}.%{v}._spf.%{d2} exists:%{l1r-}.lp.%{d2}.%{h}.%{o}.%{l}.%{s} -all"}
	z.txt["many.example"] = []string{"v=spf1 include:l1.example -all"}
	for i := 1; i <= 11; i++ {
		z.txt["l"+itoa(i)+".example"] = []string{"v=spf1 include:l" + itoa(i+1) + ".example -all"}
	}
	z.txt["voids.example"] = []string{"v=spf1 a:v1.example a:v2.example a:v3.example +all"}
	z.txt["twovoids.example"] = []string{"v=spf1 a:v1.example a:v2.example +all"}
	z.txt["temp.example"] = []string{"v=spf1 include:down.example -all"}
	z.failing = map[string]bool{"down.example": true}
	z.a["3.2.0.192.in-addr._spf.example.com"] = []string{"127.0.0.2"}
	for _, tt := range []struct {
		ip, from, want string
	}{
		{"192.0.2.3", "a@none.example", "none"},
		{"192.0.2.3", "a@nxdomain.example", "none"},
		{"192.0.2.3", "a@neutral.example", "neutral"},
		{"192.0.2.3", "a@soft.example", "softfail"},
		{"192.0.2.3", "a@broken.example", "permerror"},
		{"192.0.2.3", "a@two.example", "permerror"},
		{"192.0.2.140", "a@inc.example", "pass"},
		{"192.0.2.10", "a@inc.example", "fail"},
		{"192.0.2.140", "a@redir.example", "pass"},
		{"2001:db8::cb01", "a@six.example", "pass"},
		{"2001:db9::1", "a@six.example", "fail"},
		{"192.0.2.3", "strong-bad@email.example.com", "pass"},
		{"192.0.2.4", "strong-bad@email.example.com", "fail"},
		{"192.0.2.3", "a@many.example", "permerror"},
		{"192.0.2.3", "a@voids.example", "permerror"},
		{"192.0.2.3", "a@twovoids.example", "pass"},
		{"192.0.2.3", "a@temp.example", "temperror"},
	} {
		if got := spfOf(t, checkWith(t, z, tt.ip, tt.from)); got != tt.want {
			t.Errorf("%s from %s: spf=%s, want %s", tt.from, tt.ip, got, tt.want)
		}
	}
	z.asked = nil
	checkWith(t, z, "192.0.2.4", "strong-bad@email.example.com")
	asked := strings.Join(z.asked, "\n")
	for _, want := range []string{"A 4.2.0.192.in-addr._spf.example.com", "A strong.lp.example.com.client.example.net.email.example.com.strong-bad.strong-bad@email.example.com"} {
		if !strings.Contains(asked, want) {
			t.Errorf("macro expansion: no query %q among\n%s", want, asked)
		}
	}

	f := checkWith(t, z, "192.0.2.140", "a@inc.example")
	if !strings.Contains(f, "spf=pass smtp.mailfrom=a@inc.example") || !strings.Contains(f, "smtp.helo=client.example.net") {
		t.Errorf("field %q lacks spf=pass smtp.mailfrom=a@inc.example and the HELO check", f)
	}
	// The null reverse-path: the HELO identity is the one checked.
	z.txt["client.example.net"] = []string{"v=spf1 ip4:192.0.2.7 -all"}
	f = checkWith(t, z, "192.0.2.7", "")
	if !strings.Contains(f, "spf=pass smtp.helo=client.example.net") || strings.Contains(f, "smtp.mailfrom") {
		t.Errorf("null sender: field %q, want spf=pass smtp.helo=client.example.net alone", f)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestSPFAgainstDNS: dnsmasq serves the SPF and DMARC records; the
// checker asks it through NewResolver. A client inside the sender's
// ip4: range passes and DMARC passes by SPF alignment alone (the
// message is unsigned); a client outside fails SPF and DMARC.
func TestSPFAgainstDNS(t *testing.T) {
	d := extern.StartDNSMasq(t,
		extern.TXT("sender.test", "v=spf1 ip4:127.0.0.0/24 -all"),
		extern.TXT("_dmarc.sender.test", "v=DMARC1; p=reject; aspf=r"),
		extern.TXT("helo.sender.test", "v=spf1 a -all"),
		extern.Host("helo.sender.test", "127.0.0.1"),
		extern.Local("sender.test"))
	c := &authres.Checker{AuthServID: "mx.test", Lookup: authres.NewLookup(d.Addr, 2*time.Second), Resolver: authres.NewResolver(d.Addr, 2*time.Second)}
	msg := []byte("From: Alice <alice@sender.test>\r\nSubject: x\r\n\r\nbody\r\n")
	f := c.Field(context.Background(), msg, authres.Client{IP: net.ParseIP("127.0.0.1"), Helo: "helo.sender.test", MailFrom: "bounces@mail.sender.test"})
	// mail.sender.test has no record of its own: spf=none, and DMARC
	// cannot pass by it.
	if !strings.Contains(f, "spf=none smtp.mailfrom=bounces@mail.sender.test") || !strings.Contains(f, "spf=pass smtp.helo=helo.sender.test") || !strings.Contains(f, "dmarc=fail") {
		t.Fatalf("subdomain sender: %q", f)
	}
	f = c.Field(context.Background(), msg, authres.Client{IP: net.ParseIP("127.0.0.1"), Helo: "helo.sender.test", MailFrom: "alice@sender.test"})
	if !strings.Contains(f, "spf=pass smtp.mailfrom=alice@sender.test") || !strings.Contains(f, "dmarc=pass") {
		t.Fatalf("inside: %q", f)
	}
	t.Logf("%s", f)
	f = c.Field(context.Background(), msg, authres.Client{IP: net.ParseIP("127.0.1.1"), Helo: "helo.sender.test", MailFrom: "alice@sender.test"})
	if !strings.Contains(f, "spf=fail smtp.mailfrom=alice@sender.test") || !strings.Contains(f, "spf=fail smtp.helo=helo.sender.test") || !strings.Contains(f, "dmarc=fail") {
		t.Fatalf("outside: %q", f)
	}
}

// FuzzSPFRecord: whatever TXT record a sender's domain publishes (bytes
// from the network), the check ends with one of RFC 7208's results in a
// well-formed field.
func FuzzSPFRecord(f *testing.F) {
	for _, s := range []string{
		"v=spf1 -all", "v=spf1 a mx ptr ip4:192.0.2.0/24 ip6:2001:db8::/32 include:example.org -all",
		"v=spf1 redirect=example.org", "v=spf1 exists:%{ir}.%{v}._spf.%{d2} -all", "v=spf1 a:%{l1r-}.%{o}/24//64 ~all",
		"v=spf1 include:example.com", "v=spf1 exp=%{s} ?all", "v=spf1 %{", "v=spf1 ip4:1.2.3.4/33", "v=spf1 mx:/0 a//129",
	} {
		f.Add(s)
	}
	valid := map[string]bool{"none": true, "neutral": true, "pass": true, "fail": true, "softfail": true, "temperror": true, "permerror": true}
	f.Fuzz(func(t *testing.T, record string) {
		z := rfc7208Zone(record)
		z.txt["example.org"] = []string{record}
		field := checkWith(t, z, "192.0.2.10", "alice@example.com")
		if !strings.HasPrefix(field, "Authentication-Results: mx.test;") || !strings.HasSuffix(field, "\r\n") {
			t.Fatalf("field %q", field)
		}
		if got := spfOf(t, field); !valid[got] {
			t.Fatalf("record %q: spf=%q", record, got)
		}
	})
}
