package mx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// identity keeps equal-preference hosts in name order (Fisher-Yates swapping each with itself).
func identity(n int) int { return n - 1 }

func TestLookup(t *testing.T) {
	tests := []struct {
		name     string
		records  []string
		setup    func(z *zone)
		domain   string
		want     []Host
		wantErr  error // errors.Is target
		wantTemp bool
	}{
		{
			name: "sorted by preference",
			records: []string{
				"example.test. MX 20 b.example.test.", "example.test. MX 10 a.example.test.", "example.test. MX 30 c.example.test.",
				"a.example.test. A 127.0.0.1", "a.example.test. AAAA ::1", "b.example.test. A 127.0.0.2", "c.example.test. AAAA ::3",
			},
			domain: "example.test",
			want: []Host{
				{"a.example.test", 10, []string{"127.0.0.1", "::1"}},
				{"b.example.test", 20, []string{"127.0.0.2"}},
				{"c.example.test", 30, []string{"::3"}},
			},
		},
		{
			name:    "case and trailing dot ignored",
			records: []string{"example.test. MX 10 A.Example.Test.", "a.example.test. A 127.0.0.1"},
			domain:  "EXAMPLE.Test.",
			want:    []Host{{"a.example.test", 10, []string{"127.0.0.1"}}},
		},
		{
			name:    "implicit MX when NODATA",
			records: []string{"example.test. A 127.0.0.7", "example.test. AAAA ::7", "example.test. TXT \"v=spf1 -all\""},
			domain:  "example.test",
			want:    []Host{{"example.test", 0, []string{"127.0.0.7", "::7"}}},
		},
		{
			name:    "NODATA without addresses",
			records: []string{"example.test. TXT \"only text\""},
			domain:  "example.test",
			wantErr: ErrNoHost,
		},
		{
			name:    "NXDOMAIN is permanent, no A fall-back",
			records: []string{"other.test. A 127.0.0.1"},
			domain:  "example.test",
			wantErr: ErrNoHost,
		},
		{
			name:    "null MX",
			records: []string{"example.test. MX 0 .", "example.test. A 127.0.0.1"},
			domain:  "example.test",
			wantErr: ErrNullMX,
		},
		{
			name:    "null MX beside real MX is ignored",
			records: []string{"example.test. MX 0 .", "example.test. MX 10 a.example.test.", "a.example.test. A 127.0.0.1"},
			domain:  "example.test",
			want:    []Host{{"a.example.test", 10, []string{"127.0.0.1"}}},
		},
		{
			name:     "SERVFAIL is temporary",
			records:  []string{"example.test. MX 10 a.example.test."},
			setup:    func(z *zone) { z.rcode["example.test."] = dns.RcodeServerFailure },
			domain:   "example.test",
			wantTemp: true,
		},
		{
			name:     "REFUSED is temporary",
			setup:    func(z *zone) { z.rcode["example.test."] = dns.RcodeRefused },
			domain:   "example.test",
			wantTemp: true,
		},
		{
			name:     "timeout is temporary",
			setup:    func(z *zone) { z.drop["example.test."] = true },
			domain:   "example.test",
			wantTemp: true,
		},
		{
			name:     "SERVFAIL on the implicit MX address is temporary",
			records:  []string{"example.test. TXT \"x\""},
			setup:    func(z *zone) { z.rcode["example.test."] = dns.RcodeServerFailure },
			domain:   "example.test",
			wantTemp: true,
		},
		{
			name: "domain CNAME chased in one answer",
			records: []string{
				"example.test. CNAME mail.other.test.", "mail.other.test. MX 5 mx.other.test.", "mx.other.test. A 127.0.0.9",
			},
			domain: "example.test",
			want:   []Host{{"mx.other.test", 5, []string{"127.0.0.9"}}},
		},
		{
			name: "domain CNAME chased with a second query",
			records: []string{
				"example.test. CNAME mail.other.test.", "mail.other.test. MX 5 mx.other.test.", "mx.other.test. A 127.0.0.9",
			},
			setup:  func(z *zone) { z.noChase = true },
			domain: "example.test",
			want:   []Host{{"mx.other.test", 5, []string{"127.0.0.9"}}},
		},
		{
			name: "MX target behind CNAME",
			records: []string{
				"example.test. MX 10 alias.example.test.", "alias.example.test. CNAME real.example.test.",
				"real.example.test. A 127.0.0.4",
			},
			setup:  func(z *zone) { z.noChase = true },
			domain: "example.test",
			want:   []Host{{"alias.example.test", 10, []string{"127.0.0.4"}}},
		},
		{
			name:     "CNAME loop is temporary",
			records:  []string{"example.test. CNAME loop.test.", "loop.test. CNAME example.test."},
			domain:   "example.test",
			wantTemp: true,
		},
		{
			name:    "implicit MX through CNAME",
			records: []string{"example.test. CNAME host.other.test.", "host.other.test. A 127.0.0.5"},
			domain:  "example.test",
			want:    []Host{{"example.test", 0, []string{"127.0.0.5"}}},
		},
		{
			name: "hosts without address skipped",
			records: []string{
				"example.test. MX 10 gone.example.test.", "example.test. MX 20 noaddr.example.test.",
				"example.test. MX 30 ok.example.test.", "noaddr.example.test. TXT \"x\"", "ok.example.test. A 127.0.0.3",
			},
			domain: "example.test",
			want:   []Host{{"ok.example.test", 30, []string{"127.0.0.3"}}},
		},
		{
			name:    "no MX host has an address",
			records: []string{"example.test. MX 10 gone.example.test.", "example.test. MX 20 gone2.example.test."},
			domain:  "example.test",
			wantErr: ErrNoHost,
		},
		{
			name: "temporary failure of one MX host falls through to the next",
			records: []string{
				"example.test. MX 10 bad.example.test.", "example.test. MX 20 ok.example.test.", "ok.example.test. A 127.0.0.3",
			},
			setup:  func(z *zone) { z.rcode["bad.example.test."] = dns.RcodeServerFailure },
			domain: "example.test",
			want:   []Host{{"ok.example.test", 20, []string{"127.0.0.3"}}},
		},
		{
			name:     "temporary failure of every MX host is temporary",
			records:  []string{"example.test. MX 10 bad.example.test."},
			setup:    func(z *zone) { z.rcode["bad.example.test."] = dns.RcodeServerFailure },
			domain:   "example.test",
			wantTemp: true,
		},
		{
			name: "duplicate MX targets keep the best preference",
			records: []string{
				"example.test. MX 30 a.example.test.", "example.test. MX 10 a.example.test.", "a.example.test. A 127.0.0.1",
			},
			domain: "example.test",
			want:   []Host{{"a.example.test", 10, []string{"127.0.0.1"}}},
		},
		{
			name:    "truncated UDP answer retried over TCP",
			records: manyMX(4),
			setup:   func(z *zone) { z.truncN = 2 },
			domain:  "example.test",
			want:    hostsN(4),
		},
		{
			name:    "at most five hosts",
			records: manyMX(8),
			domain:  "example.test",
			want:    hostsN(5),
		},
		{name: "IPv4 address literal", domain: "[127.0.0.1]", want: []Host{{"[127.0.0.1]", 0, []string{"127.0.0.1"}}}},
		{name: "IPv6 address literal", domain: "[IPv6:::1]", want: []Host{{"[IPv6:::1]", 0, []string{"::1"}}}},
		{name: "malformed address literal", domain: "[::1]", wantErr: ErrNoHost},
		{name: "invalid domain", domain: "exa mple..test", wantErr: ErrNoHost},
		{name: "non-ASCII domain", domain: "bücher.test", wantErr: ErrNoHost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			z := newZone(t, tc.records...)
			if tc.setup != nil {
				tc.setup(z)
			}
			r := &Resolver{Server: serve(t, z), Timeout: 300 * time.Millisecond, Rand: identity}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := r.Lookup(ctx, tc.domain)
			switch {
			case tc.wantTemp:
				var te *TempError
				if !errors.As(err, &te) || !IsTemporary(err) {
					t.Fatalf("Lookup = %v, %v; want *TempError", got, err)
				}
				if errors.Is(err, ErrNoHost) || errors.Is(err, ErrNullMX) {
					t.Errorf("temporary error %v also matches a permanent one", err)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Lookup = %v, %v; want %v", got, err, tc.wantErr)
				}
				if IsTemporary(err) {
					t.Errorf("permanent error %v reported as temporary", err)
				}
			default:
				if err != nil {
					t.Fatalf("Lookup: %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("Lookup =\n%v\nwant\n%v", got, tc.want)
				}
			}
		})
	}
}

func manyMX(n int) []string {
	var rrs []string
	for i := range n {
		rrs = append(rrs, fmt.Sprintf("example.test. MX %d mx%d.example.test.", 10*(i+1), i),
			fmt.Sprintf("mx%d.example.test. A 127.0.1.%d", i, i))
	}
	return rrs
}

func hostsN(n int) []Host {
	var hs []Host
	for i := range n {
		hs = append(hs, Host{fmt.Sprintf("mx%d.example.test", i), uint16(10 * (i + 1)), []string{fmt.Sprintf("127.0.1.%d", i)}})
	}
	return hs
}

func TestNXDOMAINDoesNotQueryAddresses(t *testing.T) {
	z := newZone(t, "other.test. A 127.0.0.1")
	r := &Resolver{Server: serve(t, z)}
	if _, err := r.Lookup(context.Background(), "example.test"); !errors.Is(err, ErrNoHost) {
		t.Fatalf("Lookup: %v, want ErrNoHost", err)
	}
	if z.queried("example.test. A udp") || z.queried("example.test. AAAA udp") {
		t.Error("an NXDOMAIN domain was looked up for an implicit MX")
	}
}

func TestTruncationUsesTCP(t *testing.T) {
	z := newZone(t, manyMX(3)...)
	z.truncN = 1
	r := &Resolver{Server: serve(t, z)}
	if _, err := r.Lookup(context.Background(), "example.test"); err != nil {
		t.Fatal(err)
	}
	if !z.queried("example.test. MX udp") || !z.queried("example.test. MX tcp") {
		t.Errorf("queries %q: want the MX query over UDP, then over TCP", z.queries)
	}
}

func TestEqualPreferenceShuffle(t *testing.T) {
	records := []string{
		"example.test. MX 10 a.example.test.", "example.test. MX 10 b.example.test.", "example.test. MX 10 c.example.test.",
		"example.test. MX 5 first.example.test.", "example.test. MX 20 last.example.test.",
	}
	for _, n := range []string{"a", "b", "c", "first", "last"} {
		records = append(records, n+".example.test. A 127.0.0.1")
	}
	addr := serve(t, newZone(t, records...))
	names := func(hs []Host) string {
		var s []string
		for _, h := range hs {
			s = append(s, strings.TrimSuffix(h.Name, ".example.test"))
		}
		return strings.Join(s, ",")
	}
	// Fisher-Yates over [a b c] always picking j=0: swap(2,0) -> c b a, swap(1,0) -> b c a.
	for _, tc := range []struct {
		rand func(int) int
		want string
	}{
		{identity, "first,a,b,c,last"},
		{func(int) int { return 0 }, "first,b,c,a,last"},
	} {
		r := &Resolver{Server: addr, Rand: tc.rand}
		got, err := r.Lookup(context.Background(), "example.test")
		if err != nil {
			t.Fatal(err)
		}
		if names(got) != tc.want {
			t.Errorf("order %s, want %s", names(got), tc.want)
		}
	}
	// With the default source every equal-preference host comes first sometimes; the others never.
	firstOfRun := map[string]int{}
	r := &Resolver{Server: addr}
	for range 60 {
		got, err := r.Lookup(context.Background(), "example.test")
		if err != nil {
			t.Fatal(err)
		}
		order := names(got)
		if !strings.HasPrefix(order, "first,") || !strings.HasSuffix(order, ",last") {
			t.Fatalf("order %s breaks preference order", order)
		}
		firstOfRun[strings.Split(order, ",")[1]]++
	}
	for _, n := range []string{"a", "b", "c"} {
		if firstOfRun[n] == 0 { // probability (2/3)^60 ≈ 3e-11
			t.Errorf("%s never came first among equal preferences: %v", n, firstOfRun)
		}
	}
}

func TestContextCancelled(t *testing.T) {
	z := newZone(t)
	z.drop["example.test."] = true
	r := &Resolver{Server: serve(t, z), Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Lookup(ctx, "example.test")
	if !IsTemporary(err) {
		t.Fatalf("Lookup: %v, want a temporary error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Lookup took %v after the context ended", d)
	}
}

func TestServersFromResolvConf(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("# test\nnameserver 127.0.0.53\nnameserver ::1\nsearch example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := (&Resolver{ResolvConf: conf}).servers()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.53:53", "[::1]:53"}; !reflect.DeepEqual(got, want) {
		t.Errorf("servers = %q, want %q", got, want)
	}
	got, _ = (&Resolver{Server: "127.0.0.1:5353", ResolvConf: conf}).servers()
	if !reflect.DeepEqual(got, []string{"127.0.0.1:5353"}) {
		t.Errorf("explicit Server ignored: %q", got)
	}
	if _, err := (&Resolver{ResolvConf: filepath.Join(dir, "missing")}).servers(); err == nil {
		t.Error("missing resolv.conf gave no error")
	}
	empty := filepath.Join(dir, "empty.conf")
	_ = os.WriteFile(empty, []byte("search x\n"), 0o644)
	if _, err := (&Resolver{ResolvConf: empty}).servers(); err == nil {
		t.Error("resolv.conf without nameserver gave no error")
	}
}

func TestSecondServerUsedWhenFirstFails(t *testing.T) {
	bad := newZone(t)
	bad.rcode["example.test."] = dns.RcodeServerFailure
	good := newZone(t, "example.test. MX 10 a.example.test.", "a.example.test. A 127.0.0.1")
	badAddr, goodAddr := serve(t, bad), serve(t, good)
	// resolv.conf has no port syntax, so exercise the fail-over on the server list directly.
	r := &Resolver{Timeout: time.Second}
	resp, err := r.exchange(context.Background(), []string{badAddr, goodAddr}, "example.test.", dns.TypeMX)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if len(resp.Answer) != 1 {
		t.Errorf("answer %v", resp.Answer)
	}
}
