package smtp

import (
	"bytes"
	"net"
	"strings"
)

// receivedHeader builds our trace field (RFC 5321 §4.4), folded, CRLF ended:
//
//	Received: from helo ([192.0.2.1])
//		by host with ESMTPSA id abc...
//		for <rcpt>; Wed, 25 Nov 2026 13:10:00 +0000
//
// The protocol name follows RFC 3848 (ESMTP, +S for STARTTLS, +A for AUTH)
// and RFC 6531 §4.3 (UTF8SMTP... for SMTPUTF8 transactions). go-smtp does not
// tell HELO from EHLO, so the base is always ESMTP.
func (s *Server) receivedHeader(info *Session, env Envelope) []byte {
	proto := "ESMTP"
	if env.SMTPUTF8 {
		proto = "UTF8SMTP"
	}
	if info.TLS {
		proto += "S"
	}
	if info.AuthUser != "" {
		proto += "A"
	}
	var b strings.Builder
	b.WriteString("Received: from ")
	b.WriteString(sanitizeHelo(info.Helo))
	if lit := addrLiteral(info.RemoteAddr); lit != "" {
		b.WriteString(" (" + lit + ")")
	}
	b.WriteString("\r\n\tby " + sanitizeHelo(s.cfg.Hostname) + " with " + proto + " id " + info.ID)
	if len(env.Rcpts) == 1 && isPrintableAddr(env.Rcpts[0].Addr) {
		b.WriteString("\r\n\tfor <" + env.Rcpts[0].Addr + ">")
	}
	b.WriteString("; " + s.now().Format("Mon, 02 Jan 2006 15:04:05 -0700") + "\r\n")
	return []byte(b.String())
}

// addrLiteral renders the client's IP as an RFC 5321 §4.1.3 address literal.
func addrLiteral(a net.Addr) string {
	var ip net.IP
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case nil:
		return ""
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return ""
		}
		ip = net.ParseIP(host)
	}
	if ip == nil {
		return ""
	}
	if ip4 := ip.To4(); ip4 != nil {
		return "[" + ip4.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}

// sanitizeHelo keeps a client-supplied name from breaking the header: only
// visible ASCII except comment delimiters, at most 255 octets.
func sanitizeHelo(h string) string {
	if h == "" {
		return "unknown"
	}
	if len(h) > 255 {
		h = h[:255]
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' || r == '(' || r == ')' || r == '\\' || r == ';' {
			return '?'
		}
		return r
	}, h)
}

func isPrintableAddr(a string) bool {
	if a == "" || len(a) > 320 {
		return false
	}
	for _, r := range a {
		if r < '!' || r == 0x7f || r == '>' {
			return false
		}
	}
	return true
}

// scanHeader returns the size of the header section (up to and including the
// empty line that ends it, or the whole message when there is none) and the
// number of Received: fields in it. Continuation lines (starting with space
// or tab) belong to the previous field.
func scanHeader(msg []byte) (size, received int) {
	rest := msg
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		size += len(line)
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 {
			return size, received
		}
		if trimmed[0] == ' ' || trimmed[0] == '\t' {
			continue
		}
		if colon := bytes.IndexByte(trimmed, ':'); colon >= 0 &&
			strings.EqualFold(string(bytes.TrimRight(trimmed[:colon], " \t")), "Received") {
			received++
		}
	}
	return size, received
}
