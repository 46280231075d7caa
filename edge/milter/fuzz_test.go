package milter

import (
	"bytes"
	"testing"
)

// FuzzParseMessage: splitting a message into fields and writing it back
// gives the same bytes, and edits never produce a header line that is
// neither a field nor a continuation.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte("Subject: a\r\n\tb\r\nX: y\r\n\r\nbody\r\n"), "X-New", "v1\nv2\r\n\r\nInjected: yes")
	f.Add([]byte("no colon line\r\n\r\n"), "A", "")
	f.Add([]byte(" leading\r\nA:b\r\n"), "A", " x")
	f.Fuzz(func(t *testing.T, data []byte, name, value string) {
		m := parseMessage(data)
		if got := m.bytes(); !bytes.Equal(got, data) {
			t.Fatalf("round trip:\n%q\n%q", data, got)
		}
		if !validFieldName(name) {
			return
		}
		for _, leading := range []bool{false, true} {
			m := parseMessage(data)
			m.addField(name, value, leading)
			m.insertField(1, name, value, leading)
			m.changeField(1, name, value, leading)
			for _, f := range m.fields {
				lines := bytes.SplitAfter(f.raw, []byte("\n"))
				for i, l := range lines {
					if len(l) == 0 {
						continue
					}
					if i > 0 && l[0] != ' ' && l[0] != '\t' {
						t.Fatalf("field %q has a line that starts a new field: %q", f.name, f.raw)
					}
					if isBlank(l) && i > 0 {
						t.Fatalf("field %q holds an empty line: %q", f.name, f.raw)
					}
				}
			}
		}
	})
}

// FuzzParseReply: any reply a milter sends becomes a printable one-line
// reply of the code's class.
func FuzzParseReply(f *testing.F) {
	f.Add(554, "554 5.7.1 Spam message rejected")
	f.Add(451, "451-4.7.1 a\r\n451 4.7.1 b")
	f.Add(550, "550 \x00\r\n\r\n")
	f.Fuzz(func(t *testing.T, code int, raw string) {
		if code < 400 || code > 599 {
			return
		}
		r := parseReply(code, raw)
		if r.Enhanced[0] != code/100 || r.Text == "" {
			t.Fatalf("reply %+v from %d %q", r, code, raw)
		}
		for i := 0; i < len(r.Text); i++ {
			if c := r.Text[i]; c < ' ' || c > '~' {
				t.Fatalf("unprintable byte %q in %q", c, r.Text)
			}
		}
	})
}
