package maildir

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidAddress is wrapped by every error about a recipient that cannot name a mailbox.
var ErrInvalidAddress = errors.New("invalid recipient address")

// maxLocalPart is the limit of RFC 5321 §4.5.3.1.1.
const maxLocalPart = 64

// maxDomain is the limit of RFC 5321 §4.5.3.1.2.
const maxDomain = 255

// Mailbox returns the domain and local-part directory names for rcpt (see the package comment
// for the rules). It touches no file.
func Mailbox(rcpt string) (domain, local string, err error) {
	at := strings.LastIndexByte(rcpt, '@')
	if at < 0 {
		return "", "", invalid(rcpt, "no @")
	}
	local, err = mailboxLocal(rcpt[:at])
	if err != nil {
		return "", "", invalid(rcpt, err.Error())
	}
	domain, err = mailboxDomain(rcpt[at+1:])
	if err != nil {
		return "", "", invalid(rcpt, err.Error())
	}
	return domain, local, nil
}

func invalid(rcpt, why string) error {
	return fmt.Errorf("maildir: address %q: %s: %w", rcpt, why, ErrInvalidAddress)
}

func mailboxLocal(lp string) (string, error) {
	if strings.HasPrefix(lp, `"`) {
		var err error
		if lp, err = unquote(lp); err != nil {
			return "", err
		}
	}
	if !utf8.ValidString(lp) {
		return "", errors.New("local part is not valid UTF-8")
	}
	lp = strings.ToLower(lp)
	if plus := strings.IndexByte(lp, '+'); plus > 0 {
		lp = lp[:plus]
	}
	switch {
	case lp == "":
		return "", errors.New("empty local part")
	case len(lp) > maxLocalPart:
		return "", fmt.Errorf("local part longer than %d octets", maxLocalPart)
	case strings.HasPrefix(lp, "."):
		return "", errors.New("local part starts with a dot")
	}
	for _, r := range lp {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "", fmt.Errorf("local part contains %q", r)
		}
	}
	return lp, nil
}

// unquote undoes an RFC 5321 quoted-string: "..." with \x quoted pairs.
func unquote(q string) (string, error) {
	if len(q) < 2 || !strings.HasSuffix(q, `"`) {
		return "", errors.New("unterminated quoted local part")
	}
	inner := q[1 : len(q)-1]
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch c {
		case '\\':
			i++
			if i == len(inner) {
				return "", errors.New("dangling backslash in quoted local part")
			}
			b.WriteByte(inner[i])
		case '"':
			return "", errors.New("unescaped quote in quoted local part")
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func mailboxDomain(d string) (string, error) {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	switch {
	case d == "":
		return "", errors.New("empty domain")
	case len(d) > maxDomain:
		return "", fmt.Errorf("domain longer than %d octets", maxDomain)
	case !utf8.ValidString(d):
		return "", errors.New("domain is not valid UTF-8")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" {
			return "", errors.New("empty label in domain")
		}
		if strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return "", errors.New("domain label starts or ends with '-'")
		}
		for _, r := range label {
			ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r >= 0xa0
			if !ok {
				return "", fmt.Errorf("domain contains %q", r)
			}
		}
	}
	return d, nil
}
