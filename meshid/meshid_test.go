package meshid

import (
	"regexp"
	"strings"
	"testing"
)

func TestNewFormat(t *testing.T) {
	re := regexp.MustCompile(`^[a-z2-7]{26}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := New()
		if !re.MatchString(id) || !Valid(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
	if strings.ContainsAny(New(), "=ABC") {
		t.Fatal("padding or upper case in id")
	}
}

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"meshid-0001", true},
		{"abcdefgh", true},
		{"short", false},
		{"Upper-case-id", false},
		{"has/slash/in/it", false},
		{strings.Repeat("a", 80), true},
		{strings.Repeat("a", 81), false},
		{"", false},
	} {
		if got := Valid(tc.id); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestCopyDerivation(t *testing.T) {
	key := []byte("org key")
	a := Copy(key, "origin-0001", []string{"Bob@x.test", "alice@x.test"})
	if b := Copy(key, "origin-0001", []string{"alice@x.test", "bob@X.test"}); a != b {
		t.Errorf("order or case of recipients changed the copy ID: %s, %s", a, b)
	}
	if !Valid(a) {
		t.Errorf("copy ID %q is not a valid ID", a)
	}
	for name, other := range map[string]string{
		"fewer recipients": Copy(key, "origin-0001", []string{"alice@x.test"}),
		"other origin":     Copy(key, "origin-0002", []string{"alice@x.test", "bob@x.test"}),
		"other key":        Copy([]byte("other"), "origin-0001", []string{"alice@x.test", "bob@x.test"}),
	} {
		if other == a {
			t.Errorf("%s: same copy ID %s", name, a)
		}
	}
	if c := Collision("origin-0001", "digest"); c == "origin-0001" || !Valid(c) {
		t.Errorf("collision ID %q", c)
	}
}

func TestTrace(t *testing.T) {
	got := ParseTrace(" RG1, rg2 ,,")
	if strings.Join(got, "|") != "rg1|rg2" {
		t.Errorf("ParseTrace = %q", got)
	}
	if v := FormatTrace(got); v != "rg1, rg2" {
		t.Errorf("FormatTrace = %q", v)
	}
	if n := Visits([]string{"a", "b", "a"}, "a"); n != 2 {
		t.Errorf("Visits = %d", n)
	}
}
