package smtp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	gosmtp "github.com/emersion/go-smtp"
)

// EnhancedCode is an RFC 3463 enhanced status code, class.subject.detail
// (RFC 2034 puts it after the reply code). The zero value is "none".
type EnhancedCode [3]int

// Enhanced status codes meshd uses (RFC 3463 §3; the class is the reply's).
var (
	EnhOK            = EnhancedCode{2, 0, 0} // success
	EnhBadDestSyntax = EnhancedCode{5, 1, 3} // bad destination mailbox address syntax
	EnhTempLocal     = EnhancedCode{4, 3, 0} // other or undefined mail system status
	EnhTempRouting   = EnhancedCode{4, 4, 0} // other or undefined network or routing status
	EnhTempLoop      = EnhancedCode{4, 4, 6} // routing loop detected, temporary
	EnhLoop          = EnhancedCode{5, 4, 6} // routing loop detected
	EnhRelayDenied   = EnhancedCode{5, 7, 1} // delivery not authorized
)

// String is "5.4.6", or "" for none.
func (e EnhancedCode) String() string {
	if e == (EnhancedCode{}) {
		return ""
	}
	return strconv.Itoa(e[0]) + "." + strconv.Itoa(e[1]) + "." + strconv.Itoa(e[2])
}

// parseEnhanced reads "c.s.d" whose class c matches reply code (RFC 3463
// §2: class 2, 4 or 5; subject and detail up to three digits).
func parseEnhanced(s string, code int) (EnhancedCode, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || parts[0][0] != byte('0'+code/100) {
		return EnhancedCode{}, false
	}
	var e EnhancedCode
	for i, p := range parts {
		if len(p) == 0 || len(p) > 3 || strings.TrimLeft(p, "0123456789") != "" {
			return EnhancedCode{}, false
		}
		e[i], _ = strconv.Atoi(p)
	}
	return e, true
}

// Reply is an SMTP reply (RFC 5321 §4.2): a three-digit code, an enhanced
// status code when there is one, and the text (lines joined by "\n").
// A *Reply is an error: the server's hooks (Policy, Sink) return one to
// have it sent, and client results carry the server's.
type Reply struct {
	Code     int
	Enhanced EnhancedCode
	Text     string
}

// NewReply returns the reply code enh text.
func NewReply(code int, enh EnhancedCode, text string) *Reply {
	return &Reply{Code: code, Enhanced: enh, Text: text}
}

// Constructors for the replies node sends or matches.

// ReplyOK is 250 2.0.0 text.
func ReplyOK(text string) *Reply { return NewReply(250, EnhOK, text) }

// ReplyTempLocal is 451 4.3.0 text: a local problem, try again later.
func ReplyTempLocal(text string) *Reply { return NewReply(451, EnhTempLocal, text) }

// ReplyLoop is 554 5.4.6 text: this message has been here before.
func ReplyLoop(text string) *Reply { return NewReply(554, EnhLoop, text) }

// ReplyTempLoop is 451 4.4.6 text: a loop refusal kept as temporary.
func ReplyTempLoop(text string) *Reply { return NewReply(451, EnhTempLoop, text) }

// ReplyRelayDenied is 550 5.7.1 text.
func ReplyRelayDenied(text string) *Reply { return NewReply(550, EnhRelayDenied, text) }

// ReplyBadDestSyntax is 553 5.1.3 text.
func ReplyBadDestSyntax(text string) *Reply { return NewReply(553, EnhBadDestSyntax, text) }

// Positive reports a 2xx reply, Temporary a 4xx, Permanent a 5xx.
func (r Reply) Positive() bool  { return r.Code/100 == 2 }
func (r Reply) Temporary() bool { return r.Code/100 == 4 }
func (r Reply) Permanent() bool { return r.Code/100 == 5 }

// Same reports whether r has code and enhanced code of o (the text aside):
// node matches a next hop's refusal this way, never by its text.
func (r Reply) Same(o *Reply) bool { return o != nil && r.Code == o.Code && r.Enhanced == o.Enhanced }

// String is the reply on one line, "554 5.4.6 text", for logs, queue
// records and DSN diagnostics (lines of a multi-line text joined by "\n").
// A reply with no code is its text.
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

// Wire is the reply as a server sends it: one line per line of Text, each
// with code and enhanced code, "-" after the code on all but the last
// (RFC 5321 §4.2.1, RFC 2034 §4).
func (r Reply) Wire() []byte {
	lines := strings.Split(r.Text, "\n")
	var b []byte
	for i, l := range lines {
		b = strconv.AppendInt(b, int64(r.Code), 10)
		if i < len(lines)-1 {
			b = append(b, '-')
		} else {
			b = append(b, ' ')
		}
		if enh := r.Enhanced.String(); enh != "" {
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

// ErrBadReply is ParseReply's error for text that is no reply.
var ErrBadReply = errors.New("smtp: not an SMTP reply")

// ParseReply reads a reply from a remote server or a record: the wire
// form (one or more "ddd-"/"ddd " lines ending in CRLF or LF) or String's
// one-line form (whose text may hold "\n": such lines carry no code). The
// enhanced code is taken when the first line starts with one of the
// reply's class; it is removed from every line that repeats it.
func ParseReply(s string) (Reply, error) {
	s = strings.TrimRight(s, "\r\n")
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	code, first, ok := splitCode(lines[0])
	if !ok {
		return Reply{}, fmt.Errorf("%w: %q", ErrBadReply, truncate(s, 64))
	}
	texts := []string{first}
	for _, l := range lines[1:] {
		if c, rest, ok := splitCode(l); ok && c == code {
			l = rest
		}
		texts = append(texts, l)
	}
	return replyFromText(code, strings.Join(texts, "\n")), nil
}

// splitCode splits "ddd", "ddd text" or "ddd-text" into code and text.
func splitCode(l string) (int, string, bool) {
	if len(l) < 3 || l[0] < '2' || l[0] > '5' {
		return 0, "", false
	}
	c, err := strconv.Atoi(l[:3])
	if err != nil || l[1] < '0' || l[1] > '9' || l[2] < '0' || l[2] > '9' {
		return 0, "", false
	}
	switch {
	case len(l) == 3:
		return c, "", true
	case l[3] == ' ' || l[3] == '-':
		return c, l[4:], true
	}
	return 0, "", false
}

// replyFromText splits an enhanced code off text (textproto's form: lines
// joined by "\n", each may repeat it).
func replyFromText(code int, text string) Reply {
	r := Reply{Code: code, Text: text}
	first, _, _ := strings.Cut(text, " ")
	first, _, _ = strings.Cut(first, "\n")
	if enh, ok := parseEnhanced(first, code); ok {
		r.Enhanced = enh
		lines := strings.Split(text, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimPrefix(strings.TrimPrefix(l, first), " ")
		}
		r.Text = strings.Join(lines, "\n")
	}
	return r
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// goSMTPError is r as go-smtp sends it from a session hook.
func (r *Reply) goSMTPError() *gosmtp.SMTPError {
	enh := gosmtp.EnhancedCode(r.Enhanced)
	if r.Enhanced == (EnhancedCode{}) {
		enh = gosmtp.NoEnhancedCode
	}
	return &gosmtp.SMTPError{Code: r.Code, EnhancedCode: enh, Message: r.Text}
}

// hookError turns what a hook returned into what go-smtp sends: a *Reply
// or *gosmtp.SMTPError as it is; ok false for any other error.
func hookError(err error) (*gosmtp.SMTPError, bool) {
	var r *Reply
	if errors.As(err, &r) {
		return r.goSMTPError(), true
	}
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se, true
	}
	return nil, false
}
