package header

import (
	"strings"
	"testing"

	"github.com/meshd/meshd/meshid"
)

// TestHeaderNamesASCIIOnly: a field name folds only in ASCII, so a look-alike
// (long s U+017F, Kelvin sign U+212A) is never one of our trust headers, and
// every ASCII spelling of X-Meshd-* is removed from an outsider's message.
func TestHeaderNamesASCIIOnly(t *testing.T) {
	tests := []struct {
		name, body string
		origin     string // Value(X-Meshd-Origin)
		stripped   string // StripPrefix
	}{
		{"long s", "X-Me\u017fhd-Origin: abcdefgh12\r\n\r\nb", "", "X-Me\u017fhd-Origin: abcdefgh12\r\n\r\nb"},
		{"kelvin", "X-Meshd-Origin: a\r\n\r\n", "a", "\r\n"},
		{"kelvin in name", "X-Meshd-\u212aey: a\r\nS: s\r\n\r\n", "", "S: s\r\n\r\n"},
		{"upper", "X-MESHD-ORIGIN: abcdefgh12\r\n\r\n", "abcdefgh12", "\r\n"},
		{"space before colon", "x-meshd-origin \t: abcdefgh12\r\n\r\n", "abcdefgh12", "\r\n"},
		{"folded", "X-Meshd-Origin:\r\n abcdefgh12\r\nS: s\r\n\r\n", "abcdefgh12", "S: s\r\n\r\n"},
		{"unknown mesh field", "X-Meshd-Future: x\r\n\tmore\r\nS: s\r\n\r\n", "", "S: s\r\n\r\n"},
		{"not a prefix", "Y-X-Meshd-Origin: a\r\n\r\n", "", "Y-X-Meshd-Origin: a\r\n\r\n"},
		{"in body", "S: s\r\n\r\nX-Meshd-Origin: a\r\n", "", "S: s\r\n\r\nX-Meshd-Origin: a\r\n"},
	}
	for _, tt := range tests {
		if got := Value([]byte(tt.body), meshid.HeaderOrigin); got != tt.origin {
			t.Errorf("%s: Value = %q, want %q", tt.name, got, tt.origin)
		}
		if got := string(StripPrefix([]byte(tt.body), meshid.FieldPrefix)); got != tt.stripped {
			t.Errorf("%s: StripPrefix = %q, want %q", tt.name, got, tt.stripped)
		}
	}
	if FoldEqual([]byte("po\u017ftmaster"), "postmaster") || !FoldEqual([]byte("PostMaster"), "postmaster") {
		t.Error("FoldEqual folds beyond ASCII or not ASCII case")
	}
}

// refStripMesh is the rule written plainly: the header section ends at the
// first empty line; a field is a line not starting with white space plus
// its continuation lines; it is dropped when its name (before the first
// colon, trailing blanks trimmed) starts with 8 ASCII bytes that lowercase
// to "x-meshd-" (removing a name with junk after the prefix is the safe side).
func refStripMesh(body string) string {
	lines := strings.SplitAfter(body, "\n")
	var out strings.Builder
	inHeader, dropping := true, false
	for _, l := range lines {
		if !inHeader {
			out.WriteString(l)
			continue
		}
		if strings.TrimRight(l, "\r\n") == "" {
			inHeader = false
			out.WriteString(l)
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if !dropping {
				out.WriteString(l)
			}
			continue
		}
		dropping = false
		if k := strings.IndexByte(l, ':'); k > 0 {
			nm := strings.TrimRight(l[:k], " \t")
			ascii := len(nm) >= 8
			for i := 0; ascii && i < 8; i++ {
				ascii = nm[i] < 0x80
			}
			dropping = ascii && strings.ToLower(nm[:8]) == "x-meshd-"
		}
		if !dropping {
			out.WriteString(l)
		}
	}
	return out.String()
}

func FuzzStripMeshHeaders(f *testing.F) {
	for _, s := range []string{
		"X-Meshd-ID: a\r\n b\r\nS: s\r\n\r\nbody",
		"X-Me\u017fhd-Origin: x\r\n\r\n",
		"x-MESHD-trace : rg\r\n\tx\r\n",
		" cont\r\nX-Meshd-ID: a\r\n",
		"X-Meshd-\u212a: 1\r\n\n\r\nX-Meshd-ID: body\r\n",
		":\r\nX-Meshd-:\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got := string(StripPrefix([]byte(body), meshid.FieldPrefix))
		if want := refStripMesh(body); got != want {
			t.Fatalf("StripPrefix(%q) = %q, reference %q", body, got, want)
		}
		// What survives is never believed as one of ours.
		for _, nm := range []string{meshid.HeaderID, meshid.HeaderOrigin, meshid.HeaderTrace} {
			if v := Value([]byte(got), nm); v != "" {
				t.Fatalf("after strip, %s still reads %q from %q", nm, v, got)
			}
		}
	})
}

func TestStripAndReadHeaders(t *testing.T) {
	body := "Received: from x\r\n\tby y\r\nX-Meshd-ID: abcdefgh12\r\nx-meshd-trace: rg1,\r\n rg2\r\nSubject: s\r\n\r\nX-Meshd-ID: in body stays\r\n"
	tests := []struct {
		name, got, want string
	}{
		{"id", Value([]byte(body), "X-Meshd-ID"), "abcdefgh12"},
		{"folded trace", Value([]byte(body), "X-Meshd-Trace"), "rg1, rg2"},
		{"missing", Value([]byte(body), "X-Other"), ""},
		{"stripped", string(Strip([]byte(body), meshid.HeaderID, meshid.HeaderTrace)),
			"Received: from x\r\n\tby y\r\nSubject: s\r\n\r\nX-Meshd-ID: in body stays\r\n"},
		{"untouched", string(Strip([]byte("Subject: s\r\n\r\nb\r\n"), meshid.HeaderID)), "Subject: s\r\n\r\nb\r\n"},
		{"no body", Value([]byte("X-Meshd-ID: only"), "X-Meshd-ID"), "only"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

// TestLeading: the block of prefixed fields at the top, whole fields only.
func TestLeading(t *testing.T) {
	for _, tt := range []struct {
		body string
		want int
	}{
		{"X-Meshd-ID: a\r\nX-Meshd-Origin: b\r\nReceived: r\r\n\r\nbody", 34},
		{"x-meshd-trace: rg1,\r\n\trg2\r\nS: s\r\n\r\n", 27},
		{"Received: r\r\nX-Meshd-ID: a\r\n\r\n", 0},
		{"X-Meshd-ID: a\r\n\r\nX-Meshd-ID: b\r\n", 15},
		{"X-Meshd-ID: a\r\nX-Meshd-Origin: cut", 15},
		{"X-Meshd-ID: a\r\n folded but cut", 0},
		{"X-Meshd-ID: a\r\n", 15},
		{"X-Me\u017fhd-ID: a\r\n\r\n", 0},
		{"", 0},
	} {
		if got := Leading([]byte(tt.body), meshid.FieldPrefix); got != tt.want {
			t.Errorf("Leading(%q) = %d, want %d", tt.body, got, tt.want)
		}
	}
}
