package smtp

import (
	"net/netip"
	"strings"
	"unicode/utf8"

	gosmtp "github.com/emersion/go-smtp"
)

// Address syntax (RFC 5321 §4.1.2, RFC 6531 §3.3) checked at MAIL and RCPT, after go-smtp's
// parser has found the path. go-smtp takes any byte but a few specials: a NUL, a control
// character, a local part that is not a dot-string or a non-ASCII address without SMTPUTF8
// would otherwise be queued, and bounce later (or be lost) downstream.
//
// A quoted local part reaches us unquoted (go-smtp removes the quotes), so one that is not also a
// valid dot-string is refused: we could not hand it on correctly, and RFC 5321 §4.1.2 asks hosts
// not to define such mailboxes.
var (
	errAddrControl = &gosmtp.SMTPError{Code: 501, EnhancedCode: gosmtp.EnhancedCode{5, 5, 2},
		Message: "Control characters and NUL are not allowed in addresses"}
	errAddrUTF8 = &gosmtp.SMTPError{Code: 553, EnhancedCode: gosmtp.EnhancedCode{5, 6, 7},
		Message: "Non-ASCII address requires the SMTPUTF8 parameter (RFC 6531)"}
	errAddrBadUTF8 = &gosmtp.SMTPError{Code: 501, EnhancedCode: gosmtp.EnhancedCode{5, 5, 2},
		Message: "Address is not valid UTF-8"}
)

// maxLocalPart and maxDomain are RFC 5321 §4.5.3.1.1 and §4.5.3.1.2.
const (
	maxLocalPart = 64
	maxDomain    = 255
)

// postmasterPath is what the dialogue interposer makes of RCPT TO:<postmaster> (RFC 5321
// §4.5.1: accepted without a domain), which go-smtp's parser refuses for want of an '@'. No
// client address passes checkAddress with this domain, so it can only come from there.
const postmasterPath = "postmaster@[postmaster]"

// checkAddress returns the reply refusing addr, or nil. sender chooses the enhanced code of a
// syntax error (5.1.7 for the sender, 5.1.3 for a recipient); utf8 is the SMTPUTF8 parameter.
func checkAddress(addr string, sender, smtputf8 bool) *gosmtp.SMTPError {
	ascii := true
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		if c < 0x20 || c == 0x7f {
			return errAddrControl
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	if !ascii {
		if !smtputf8 {
			return errAddrUTF8
		}
		if !utf8.ValidString(addr) {
			return errAddrBadUTF8
		}
	}
	local, domain, ok := SplitAddr(addr)
	if !ok {
		return addrSyntax(sender, "Address must be local-part@domain")
	}
	if len(local) > maxLocalPart {
		return addrSyntax(sender, "Local part longer than 64 octets")
	}
	if !dotString(local) {
		return addrSyntax(sender, "Malformed local part: atoms separated by single dots, no quoted forms")
	}
	if !validDomain(domain) {
		return addrSyntax(sender, "Malformed domain")
	}
	return nil
}

func addrSyntax(sender bool, text string) *gosmtp.SMTPError {
	ec := gosmtp.EnhancedCode{5, 1, 3}
	if sender {
		ec = gosmtp.EnhancedCode{5, 1, 7}
	}
	return &gosmtp.SMTPError{Code: 553, EnhancedCode: ec, Message: text}
}

// dotString: Atom *("." Atom), Atom = 1*atext (RFC 5321 §4.1.2); bytes of UTF-8 characters
// count as atext (RFC 6531 §3.3), checked by the caller.
func dotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && !atext(c) {
			return false
		}
	}
	return true
}

func atext(c byte) bool {
	switch {
	case c >= 0x80, 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// validDomain: a dot-separated name of letters, digits and hyphens (labels not starting or
// ending with one; UTF-8 U-labels under SMTPUTF8), one trailing dot tolerated, or an address
// literal [192.0.2.1] / [IPv6:2001:db8::1].
func validDomain(d string) bool {
	if strings.HasPrefix(d, "[") && strings.HasSuffix(d, "]") {
		lit := d[1 : len(d)-1]
		if v6, ok := strings.CutPrefix(lit, "IPv6:"); ok {
			a, err := netip.ParseAddr(v6)
			return err == nil && a.Is6()
		}
		a, err := netip.ParseAddr(lit)
		return err == nil && a.Is4()
	}
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > maxDomain {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 0x80 || c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
				return false
			}
		}
	}
	return true
}

// rewritePostmaster turns "RCPT TO:<postmaster>..." (any case, RFC 5321 §4.5.1) into a path
// go-smtp's parser takes; other lines are returned unchanged.
func rewritePostmaster(line []byte) []byte {
	const prefix = "RCPT TO:<POSTMASTER>"
	if len(line) < len(prefix) {
		return line
	}
	for i := 0; i < len(prefix); i++ { // ASCII case folding only
		c := line[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != prefix[i] {
			return line
		}
	}
	out := make([]byte, 0, len(line)+len(postmasterPath))
	out = append(out, "RCPT TO:<"+postmasterPath+">"...)
	return append(out, line[len(prefix):]...)
}
