package smtp

import (
	"fmt"
	"strconv"
	"strings"
)

// DeliveryError is a whole-transaction failure of Client.Send: the
// connection, TLS, MAIL or DATA failed, so no recipient that reached this
// point was delivered.
type DeliveryError struct {
	Code      int    // SMTP reply code; 0 when no reply was involved (network, TLS, local)
	Enhanced  string // RFC 3463 code such as "5.1.1"; "" when the server gave none
	Text      string // reply text without code, or a description of the failure
	Temporary bool   // retry later (4xx, network, TLS errors); false for 5xx
	Op        string // "connect", "starttls", "mail", "data"
	Addr      string // host:port (or socket path) of the server
	Err       error  // underlying cause for non-reply failures
}

func (e *DeliveryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "smtp: deliver to %s: %s: ", e.Addr, e.Op)
	if e.Code != 0 {
		b.WriteString(strconv.Itoa(e.Code) + " ")
		if e.Enhanced != "" {
			b.WriteString(e.Enhanced + " ")
		}
	}
	b.WriteString(e.Text)
	if e.Err != nil && e.Text == "" {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Reply formats the failure as a reply line ("451 4.4.1 text") for logs,
// queue records and DSN diagnostics.
func (e *DeliveryError) Reply() string {
	if e.Code == 0 {
		return e.Text
	}
	return formatCodeText(e.Code, e.Enhanced, e.Text)
}

// RcptResult is the outcome for one recipient: the RCPT reply when it was
// refused there, otherwise the final DATA reply (LMTP: its own DATA reply).
type RcptResult struct {
	Addr     string
	Code     int // 250 ok, 4xx temporary, 5xx permanent
	Enhanced string
	Text     string
	// NoDSN: the server did not offer DSN (RFC 3461), so the recipient's
	// NOTIFY and ORCPT went no further than this hop; a sender who asked
	// for NOTIFY=SUCCESS is owed a "relayed" notification (§4.2).
	NoDSN bool
}

// OK reports a 2xx reply.
func (r RcptResult) OK() bool { return r.Code/100 == 2 }

// Temporary reports a 4xx reply.
func (r RcptResult) Temporary() bool { return r.Code/100 == 4 }

// Reply formats the result as a reply line, e.g. "550 5.1.1 no such user".
func (r RcptResult) Reply() string { return formatCodeText(r.Code, r.Enhanced, r.Text) }

func formatCodeText(code int, enh, text string) string {
	s := strconv.Itoa(code)
	if enh != "" {
		s += " " + enh
	}
	if text != "" {
		s += " " + text
	}
	return s
}

// reply is one parsed server reply.
type reply struct {
	code     int
	enhanced string
	text     string // lines joined with "\n", enhanced code removed
}

// parseReply splits an enhanced status code (RFC 2034 §4) off the text that
// textproto returns (lines joined by "\n", each may repeat the code).
func parseReply(code int, msg string) reply {
	r := reply{code: code, text: msg}
	first, _, _ := strings.Cut(msg, " ")
	if isEnhanced(first, code) {
		r.enhanced = first
		lines := strings.Split(msg, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimPrefix(strings.TrimPrefix(l, first), " ")
		}
		r.text = strings.Join(lines, "\n")
	}
	return r
}

func isEnhanced(s string, code int) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || parts[0][0] != byte('0'+code/100) {
		return false
	}
	for _, p := range parts[1:] {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 999 {
			return false
		}
	}
	return true
}

func (r reply) deliveryError(op, addr string) *DeliveryError {
	return &DeliveryError{Code: r.code, Enhanced: r.enhanced, Text: r.text, Temporary: r.code/100 != 5, Op: op, Addr: addr}
}

func (r reply) result(addr string) RcptResult {
	return RcptResult{Addr: addr, Code: r.code, Enhanced: r.enhanced, Text: r.text}
}
