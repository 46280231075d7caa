package smtp

import "testing"

func TestSplitAddrAndDomain(t *testing.T) {
	for _, tc := range []struct {
		addr, local, domain string
		ok                  bool
		lower               string
	}{
		{"bob@Example.TEST.", "bob", "Example.TEST.", true, "example.test"},
		{"a@b@c.test", "a@b", "c.test", true, "c.test"},
		{"postmaster", "postmaster", "", false, ""},
		{"@x.test", "@x.test", "", false, ""},
		{"bob@", "bob@", "", false, ""},
	} {
		l, d, ok := SplitAddr(tc.addr)
		if l != tc.local || d != tc.domain || ok != tc.ok {
			t.Errorf("SplitAddr(%q) = %q, %q, %v", tc.addr, l, d, ok)
		}
		if got := AddrDomain(tc.addr); got != tc.lower {
			t.Errorf("AddrDomain(%q) = %q, want %q", tc.addr, got, tc.lower)
		}
	}
}
