// Package reply is meshd's SMTP reply (RFC 5321 §4.2): a three-digit code,
// an RFC 3463 enhanced status code, and text. The smtp server sends one
// from its hooks, the smtp client returns the server's in its results, the
// queue records an attempt's, and node decides by its codes, never by its
// text. It is a leaf package so that smtp and queue, which do not import
// each other, share it; smtp names it smtp.Reply.
//
// Text is kept without codes, its lines joined by "\n". String is the one-
// line form for logs, queue records and DSN diagnostics ("554 5.4.6
// text"); Wire is what a server sends; Parse reads either back.
package reply

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Enhanced is an RFC 3463 enhanced status code, class.subject.detail (RFC
// 2034 puts it after the reply code). The zero value is "none".
type Enhanced [3]int

// Enhanced status codes meshd uses (RFC 3463 §3; the class is the reply's).
var (
	EnhOK            = Enhanced{2, 0, 0} // other undefined status: success
	EnhBadDestSyntax = Enhanced{5, 1, 3} // bad destination mailbox address syntax
	EnhTempLocal     = Enhanced{4, 3, 0} // other or undefined mail system status
	EnhTempRouting   = Enhanced{4, 4, 0} // other or undefined network or routing status
	EnhTempLoop      = Enhanced{4, 4, 6} // routing loop detected, kept temporary
	EnhLoop          = Enhanced{5, 4, 6} // routing loop detected
	EnhRelayDenied   = Enhanced{5, 7, 1} // delivery not authorized, message refused
)

// String is "5.4.6", or "" for none.
func (e Enhanced) String() string {
	if e == (Enhanced{}) {
		return ""
	}
	return strconv.Itoa(e[0]) + "." + strconv.Itoa(e[1]) + "." + strconv.Itoa(e[2])
}

// parseEnhanced reads "c.s.d" whose class c matches reply code (RFC 3463
// §2; subject and detail of one to three digits).
func parseEnhanced(s string, code int) (Enhanced, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || parts[0][0] != byte('0'+code/100) {
		return Enhanced{}, false
	}
	var e Enhanced
	for i, p := range parts {
		if len(p) == 0 || len(p) > 3 || strings.TrimLeft(p, "0123456789") != "" {
			return Enhanced{}, false
		}
		e[i], _ = strconv.Atoi(p)
	}
	return e, true
}

// Reply is an SMTP reply. Code 0 is no reply at all (a network or local
// failure Text describes). A *Reply is an error.
type Reply struct {
	Code     int
	Enhanced Enhanced
	Text     string
}

// New returns the reply code enh text.
func New(code int, enh Enhanced, text string) *Reply {
	return &Reply{Code: code, Enhanced: enh, Text: text}
}

// OK is 250 2.0.0 text.
func OK(text string) *Reply { return New(250, EnhOK, text) }

// TempLocal is 451 4.3.0 text: a local problem, try again later.
func TempLocal(text string) *Reply { return New(451, EnhTempLocal, text) }

// TempRouting is 451 4.4.0 text.
func TempRouting(text string) *Reply { return New(451, EnhTempRouting, text) }

// Loop is 554 5.4.6 text: this message has been here before.
func Loop(text string) *Reply { return New(554, EnhLoop, text) }

// TempLoop is 451 4.4.6 text: a loop refusal kept as temporary.
func TempLoop(text string) *Reply { return New(451, EnhTempLoop, text) }

// RelayDenied is 550 5.7.1 text.
func RelayDenied(text string) *Reply { return New(550, EnhRelayDenied, text) }

// BadDestSyntax is 553 5.1.3 text.
func BadDestSyntax(text string) *Reply { return New(553, EnhBadDestSyntax, text) }

// Positive reports a 2xx reply, Temporary a 4xx, Permanent a 5xx.
func (r Reply) Positive() bool  { return r.Code/100 == 2 }
func (r Reply) Temporary() bool { return r.Code/100 == 4 }
func (r Reply) Permanent() bool { return r.Code/100 == 5 }

// Same reports whether r has the code and enhanced code of o, whatever
// the texts.
func (r Reply) Same(o *Reply) bool { return o != nil && r.Code == o.Code && r.Enhanced == o.Enhanced }

// String is the reply on one line, "554 5.4.6 text" (a multi-line text
// keeps its "\n"). A reply with no code is its text.
func (r Reply) String() string {
	if r.Code == 0 {
		return r.Text
	}
	s := strconv.Itoa(r.Code)
	if enh := r.Enhanced.String(); enh != "" {
		s += " " + enh
	}
	if r.Text != "" {
		s += " " + r.Text
	}
	return s
}

// Error implements error.
func (r *Reply) Error() string { return r.String() }

// MarshalText is String, so that logs and JSON show the reply as a line.
func (r Reply) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads String's form; text that is no reply is kept as a
// reply without code.
func (r *Reply) UnmarshalText(b []byte) error {
	*r = ParseOrText(string(b))
	return nil
}

// Wire is the reply as a server sends it: one line per line of Text, each
// with code and enhanced code, "-" after the code on all but the last
// (RFC 5321 §4.2.1, RFC 2034 §4).
func (r Reply) Wire() []byte {
	lines := strings.Split(r.Text, "\n")
	enh := r.Enhanced.String()
	var b []byte
	for i, l := range lines {
		b = strconv.AppendInt(b, int64(r.Code), 10)
		if i < len(lines)-1 {
			b = append(b, '-')
		} else {
			b = append(b, ' ')
		}
		if enh != "" {
			b = append(b, enh...)
			if l != "" {
				b = append(b, ' ')
			}
		}
		b = append(b, l...)
		b = append(b, '\r', '\n')
	}
	return b
}

// ErrNotReply is Parse's error for text that is no reply.
var ErrNotReply = errors.New("reply: not an SMTP reply")

// Parse reads a reply from a remote server or a record: the wire form
// (one or more "ddd-"/"ddd " lines ending in CRLF or LF) or String's form
// (whose text may hold "\n": such lines carry no code). The enhanced code
// is taken when the first line starts with one of the reply's class; it is
// removed from every line that repeats it.
func Parse(s string) (Reply, error) {
	s = strings.TrimRight(s, "\r\n")
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	code, first, ok := splitCode(lines[0])
	if !ok {
		if len(s) > 64 {
			s = s[:64]
		}
		return Reply{}, fmt.Errorf("%w: %q", ErrNotReply, s)
	}
	texts := []string{first}
	for _, l := range lines[1:] {
		if c, rest, ok := splitCode(l); ok && c == code {
			l = rest
		}
		texts = append(texts, l)
	}
	return FromText(code, strings.Join(texts, "\n")), nil
}

// ParseOrText is Parse, or for text that is no reply (a queue record's
// "dial tcp: ..." of a connection that never got one) a reply without code
// holding s.
func ParseOrText(s string) Reply {
	if r, err := Parse(s); err == nil {
		return r
	}
	return Reply{Text: s}
}

// splitCode splits "ddd", "ddd text" or "ddd-text" into code and text.
func splitCode(l string) (int, string, bool) {
	if len(l) < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' || l[2] > '9' {
		return 0, "", false
	}
	c, _ := strconv.Atoi(l[:3])
	switch {
	case len(l) == 3:
		return c, "", true
	case l[3] == ' ' || l[3] == '-':
		return c, l[4:], true
	}
	return 0, "", false
}

// FromText makes the reply of code and msg as net/textproto returns them
// (lines joined by "\n", each of which may repeat the enhanced code).
func FromText(code int, msg string) Reply {
	r := Reply{Code: code, Text: msg}
	first, _, _ := strings.Cut(msg, " ")
	first, _, _ = strings.Cut(first, "\n")
	if enh, ok := parseEnhanced(first, code); ok {
		r.Enhanced = enh
		lines := strings.Split(msg, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimPrefix(strings.TrimPrefix(l, first), " ")
		}
		r.Text = strings.Join(lines, "\n")
	}
	return r
}
