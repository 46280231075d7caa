package reply

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Reply
	}{
		{"554 5.4.6 Routing loop detected", Reply{554, EnhLoop, "Routing loop detected"}},
		{"250 2.0.0 OK queued as x\r\n", Reply{250, EnhOK, "OK queued as x"}},
		{"550 no enhanced code", Reply{550, Enhanced{}, "no enhanced code"}},
		{"451 5.1.1 class mismatch", Reply{451, Enhanced{}, "5.1.1 class mismatch"}},
		{"421", Reply{421, Enhanced{}, ""}},
		{"421 4.4.2", Reply{421, Enhanced{4, 4, 2}, ""}},
		{"550-5.1.1 first\r\n550 5.1.1 second\r\n", Reply{550, Enhanced{5, 1, 1}, "first\nsecond"}},
		{"250-mx.test Hello\n250 PIPELINING\n", Reply{250, Enhanced{}, "mx.test Hello\nPIPELINING"}},
		// String's form of a multi-line reply, as queue records hold it.
		{"550 5.1.1 first\nsecond", Reply{550, Enhanced{5, 1, 1}, "first\nsecond"}},
		// A queue record's reply of our own, with a nested reply in its text.
		{"451 4.4.6 next hop refused a loop; waiting for another route (554 5.4.6 x)",
			Reply{451, EnhTempLoop, "next hop refused a loop; waiting for another route (554 5.4.6 x)"}},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "ok", "25", "099 x", "600 x", "2500 x", "+50 x", "-50 x", "250x"} {
		if r, err := Parse(bad); !errors.Is(err, ErrNotReply) {
			t.Errorf("Parse(%q) = %#v, %v; want ErrNotReply", bad, r, err)
		}
	}
}

func TestReplyForms(t *testing.T) {
	r := Loop("Routing loop detected")
	if s := r.String(); s != "554 5.4.6 Routing loop detected" || r.Error() != s {
		t.Fatalf("String %q, Error %q", s, r.Error())
	}
	multi := Reply{Code: 550, Enhanced: Enhanced{5, 1, 1}, Text: "first\nsecond"}
	if w := string(multi.Wire()); w != "550-5.1.1 first\r\n550 5.1.1 second\r\n" {
		t.Fatalf("Wire %q", w)
	}
	if w := string((Reply{Code: 421}).Wire()); w != "421 \r\n" {
		t.Fatalf("Wire of a bare code %q", w)
	}
	if (Reply{Text: "dial failed"}).String() != "dial failed" {
		t.Fatal("a reply without code is its text")
	}
	if !(Reply{554, EnhLoop, "other text"}).Same(Loop("x")) || (Reply{554, Enhanced{5, 4, 0}, ""}).Same(Loop("x")) {
		t.Fatal("Same compares codes, not text")
	}
	if !TempLocal("x").Temporary() || !RelayDenied("x").Permanent() || !OK("x").Positive() {
		t.Fatal("classes")
	}
}

// FuzzParseReply: whatever a server sends, ParseReply does not panic, and
// a reply it reads comes back the same from its own wire form.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"554 5.4.6 loop", "550-5.1.1 a\r\n550 5.1.1 b\r\n", "421", "250 x\ny", "451 4.4.6 (554 5.4.6 x)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if r.Code < 200 || r.Code > 599 {
			t.Fatalf("Parse(%q) code %d", s, r.Code)
		}
		if strings.ContainsAny(r.Text, "\r") {
			return // a CR inside a line is no line end: the wire form would differ
		}
		back, err := Parse(string(r.Wire()))
		if err != nil || back != r {
			t.Fatalf("Parse(%q) = %#v; its wire form %q reads %#v, %v", s, r, r.Wire(), back, err)
		}
	})
}
