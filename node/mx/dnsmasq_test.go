package mx_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/node/mx"
)

// TestLookupAgainstDNSMasq runs the resolver against a real dnsmasq (scripts/install-deps
// installs it; the test fails without it unless MESHD_SKIP_EXTERN=1).
func TestLookupAgainstDNSMasq(t *testing.T) {
	d := extern.StartDNSMasq(t,
		extern.Local("example.test"),
		extern.MX("example.test", "mx1.example.test", 10),
		extern.MX("example.test", "mx2.example.test", 20),
		extern.MX("example.test", "mx3.example.test", 20),
		extern.Host("mx1.example.test", "127.0.0.11", "::11"),
		extern.Host("mx2.example.test", "127.0.0.12"),
		extern.Host("mx3.example.test", "127.0.0.13"),
		extern.NullMX("null.example.test"),
		extern.Host("plain.example.test", "127.0.0.20"),
		extern.CNAME("alias.example.test", "plain.example.test"),
		extern.TXT("textonly.example.test", "nothing here"),
		extern.MX("many.example.test", "m1.example.test", 1),
		extern.MX("many.example.test", "m2.example.test", 2),
		extern.MX("many.example.test", "m3.example.test", 3),
		extern.MX("many.example.test", "m4.example.test", 4),
		extern.MX("many.example.test", "m5.example.test", 5),
		extern.MX("many.example.test", "m6.example.test", 6),
		extern.MX("many.example.test", "m7.example.test", 7),
		extern.MX("many.example.test", "nowhere.example.test", 0),
		extern.Host("m1.example.test", "127.0.1.1"), extern.Host("m2.example.test", "127.0.1.2"),
		extern.Host("m3.example.test", "127.0.1.3"), extern.Host("m4.example.test", "127.0.1.4"),
		extern.Host("m5.example.test", "127.0.1.5"), extern.Host("m6.example.test", "127.0.1.6"),
		extern.Host("m7.example.test", "127.0.1.7"),
	)
	tests := []struct {
		domain   string
		want     []mx.Host
		wantErr  error
		wantTemp bool
	}{
		{domain: "example.test", want: []mx.Host{
			{Name: "mx1.example.test", Pref: 10, Addrs: []string{"127.0.0.11", "::11"}},
			{Name: "mx2.example.test", Pref: 20, Addrs: []string{"127.0.0.12"}},
			{Name: "mx3.example.test", Pref: 20, Addrs: []string{"127.0.0.13"}},
		}},
		{domain: "null.example.test", wantErr: mx.ErrNullMX},
		{domain: "plain.example.test", want: []mx.Host{{Name: "plain.example.test", Addrs: []string{"127.0.0.20"}}}},
		{domain: "alias.example.test", want: []mx.Host{{Name: "alias.example.test", Addrs: []string{"127.0.0.20"}}}},
		{domain: "textonly.example.test", wantErr: mx.ErrNoHost},
		{domain: "nx.example.test", wantErr: mx.ErrNoHost},
		{domain: "many.example.test", want: []mx.Host{
			{Name: "m1.example.test", Pref: 1, Addrs: []string{"127.0.1.1"}},
			{Name: "m2.example.test", Pref: 2, Addrs: []string{"127.0.1.2"}},
			{Name: "m3.example.test", Pref: 3, Addrs: []string{"127.0.1.3"}},
			{Name: "m4.example.test", Pref: 4, Addrs: []string{"127.0.1.4"}},
			{Name: "m5.example.test", Pref: 5, Addrs: []string{"127.0.1.5"}},
		}},
		// dnsmasq has no upstream and answers REFUSED outside its local domain.
		{domain: "elsewhere.invalid", wantTemp: true},
	}
	for _, netw := range []string{"udp", "tcp"} {
		r := &mx.Resolver{Server: d.Addr, Net: netw, Timeout: 2 * time.Second, Rand: func(n int) int { return n - 1 }}
		for _, tc := range tests {
			t.Run(netw+"/"+tc.domain, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				got, err := r.Lookup(ctx, tc.domain)
				switch {
				case tc.wantTemp:
					if !mx.IsTemporary(err) {
						t.Fatalf("Lookup = %v, %v; want a temporary error", got, err)
					}
				case tc.wantErr != nil:
					if !errors.Is(err, tc.wantErr) || mx.IsTemporary(err) {
						t.Fatalf("Lookup = %v, %v; want permanent %v", got, err, tc.wantErr)
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
	// A stopped server is a temporary failure, not a bounce.
	d.Stop()
	r := &mx.Resolver{Server: d.Addr, Timeout: 200 * time.Millisecond}
	if _, err := r.Lookup(context.Background(), "example.test"); !mx.IsTemporary(err) {
		t.Errorf("Lookup against a stopped server: %v, want a temporary error", err)
	}
}
