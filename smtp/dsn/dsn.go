package dsn

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"regexp"
	"strings"
	"time"
)

// Actions of RFC 3464 §2.3.3.
const (
	ActionFailed    = "failed"
	ActionDelayed   = "delayed"
	ActionDelivered = "delivered"
	ActionRelayed   = "relayed"
	ActionExpanded  = "expanded"
)

// RET values of RFC 3461 §4.3.
const (
	RetFull = "FULL"
	RetHdrs = "HDRS"
)

// DefaultMaxFullBytes is the largest original returned whole when the sender gave no RET.
const DefaultMaxFullBytes = 64 << 10

// Report is what a notification says. Hostname, From and at least one recipient are required.
type Report struct {
	Hostname        string    // this MTA's host name: MAILER-DAEMON@Hostname, Message-ID domain
	ReportingMTA    string    // name in Reporting-MTA (default Hostname)
	Postmaster      string    // address the text points to for help (optional)
	From            string    // original envelope sender, the notification's recipient; never ""
	EnvID           string    // ENVID of the original transaction, decoded (optional)
	ReceivedFromMTA string    // host the original came from (optional, Received-From-MTA)
	ArrivalDate     time.Time // when the original was accepted (optional)
	Rcpts           []RcptStatus
	Ret             string // RetFull, RetHdrs or "" (see MaxFullBytes)
	Original        []byte // the original message as queued (header and body)
	MaxFullBytes    int    // without Ret: largest original returned whole (default 64 KiB)
	Now             time.Time
	MessageID       string // Message-ID of the notification without <>; default random@Hostname
}

// RcptStatus is the fate of one recipient (RFC 3464 §2.3).
type RcptStatus struct {
	Final          string    // address delivery was attempted to (Final-Recipient)
	Original       string    // ORCPT as "addr-type;address" (or a bare address) when given
	Action         string    // ActionFailed, ActionDelayed, ...
	Status         string    // "5.1.1"; default from Diagnostic's enhanced code, else by Action
	Diagnostic     string    // "smtp; 550 5.1.1 no such user"; a bare reply gets "smtp; ", other text "x-meshd; "
	RemoteMTA      string    // host (or host:port) that gave Diagnostic
	LastAttempt    time.Time // Last-Attempt-Date (optional)
	WillRetryUntil time.Time // Will-Retry-Until, only for ActionDelayed (optional)
}

// maxLine is the RFC 5322 §2.1.1 limit without CRLF.
const maxLine = 998

var (
	statusRE   = regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}$`)
	enhancedRE = regexp.MustCompile(`\b([245]\.\d{1,3}\.\d{1,3})\b`)
	diagTypeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*;`)
	replyRE    = regexp.MustCompile(`^[2-5][0-9][0-9]([ -]|$)`)
)

// Build renders r. envFrom is the envelope sender for the notification: always "" (null).
func Build(r Report) (envFrom string, body []byte, err error) {
	if err := r.validate(); err != nil {
		return "", nil, err
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	msgID := r.MessageID
	if msgID == "" {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", nil, fmt.Errorf("dsn: build: %w", err)
		}
		msgID = hex.EncodeToString(b[:]) + ".dsn@" + r.Hostname
	}
	orig := parseOriginal(r.Original)
	rcpts := make([]RcptStatus, len(r.Rcpts))
	for i, rc := range r.Rcpts {
		rcpts[i] = normalise(rc)
	}

	text := humanText(r, rcpts, orig)
	status, global := statusPart(r, rcpts)
	origType, origContent := originalPart(r, orig)

	statusType := "message/delivery-status"
	if global {
		statusType = "message/global-delivery-status\r\nContent-Transfer-Encoding: 8bit"
	}
	parts := []part{
		{header: "Content-Type: text/plain; charset=" + charset(text) + "\r\nContent-Transfer-Encoding: " + cte(text) +
			"\r\nContent-Description: Notification\r\n", body: text},
		{header: "Content-Type: " + statusType + "\r\nContent-Description: Delivery report\r\n", body: status},
	}
	if origContent != nil {
		desc := "Original message"
		if origType != "message/rfc822" {
			desc = "Original message header"
		}
		h := "Content-Type: " + origType + "\r\nContent-Description: " + desc + "\r\n"
		if has8bit(origContent) {
			h += "Content-Transfer-Encoding: 8bit\r\n"
		}
		parts = append(parts, part{header: h, body: origContent})
	}
	boundary := makeBoundary(msgID, parts)

	var b bytes.Buffer
	writeHeader(&b, "From", "Mail Delivery System <MAILER-DAEMON@"+r.Hostname+">")
	writeHeader(&b, "To", "<"+r.From+">")
	writeHeader(&b, "Subject", encodeWord(subject(rcpts, orig.subject)))
	writeHeader(&b, "Date", now.Format(time.RFC1123Z))
	writeHeader(&b, "Message-ID", "<"+msgID+">")
	if orig.messageID != "" {
		writeHeader(&b, "In-Reply-To", orig.messageID)
		writeHeader(&b, "References", orig.messageID)
	}
	writeHeader(&b, "Auto-Submitted", "auto-replied")
	writeHeader(&b, "MIME-Version", "1.0")
	writeHeader(&b, "Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	b.WriteString("\r\nThis is a MIME-encapsulated delivery status notification (RFC 3464).\r\n")
	for _, p := range parts {
		b.WriteString("\r\n--" + boundary + "\r\n")
		b.WriteString(p.header)
		b.WriteString("\r\n")
		b.Write(p.body)
		if !bytes.HasSuffix(p.body, []byte("\r\n")) {
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return "", b.Bytes(), nil
}

func (r Report) validate() error {
	switch {
	case r.Hostname == "":
		return errors.New("dsn: build: no Hostname")
	case r.From == "":
		return errors.New("dsn: build: no recipient for the notification (null sender)")
	case len(r.Rcpts) == 0:
		return errors.New("dsn: build: no recipients to report")
	}
	if r.Ret != "" && !strings.EqualFold(r.Ret, RetFull) && !strings.EqualFold(r.Ret, RetHdrs) {
		return fmt.Errorf("dsn: build: RET %q is neither FULL nor HDRS", r.Ret)
	}
	for _, f := range []struct{ name, v string }{
		{"Hostname", r.Hostname}, {"ReportingMTA", r.ReportingMTA}, {"Postmaster", r.Postmaster},
		{"From", r.From}, {"EnvID", r.EnvID}, {"ReceivedFromMTA", r.ReceivedFromMTA}, {"MessageID", r.MessageID},
	} {
		if hasControl(f.v) {
			return fmt.Errorf("dsn: build: %s %q contains control characters", f.name, f.v)
		}
	}
	if strings.ContainsAny(r.Hostname+r.From, " <>") || strings.ContainsAny(r.MessageID, " <>") {
		return fmt.Errorf("dsn: build: Hostname, From or MessageID contains space or angle bracket")
	}
	for _, rc := range r.Rcpts {
		if rc.Final == "" || hasControl(rc.Final) || hasControl(rc.Original) || hasControl(rc.RemoteMTA) {
			return fmt.Errorf("dsn: build: recipient %q: bad address or remote MTA", rc.Final)
		}
		switch rc.Action {
		case ActionFailed, ActionDelayed, ActionDelivered, ActionRelayed, ActionExpanded:
		default:
			return fmt.Errorf("dsn: build: recipient %s: action %q", rc.Final, rc.Action)
		}
		if rc.Status != "" && !statusRE.MatchString(rc.Status) {
			return fmt.Errorf("dsn: build: recipient %s: status %q", rc.Final, rc.Status)
		}
	}
	return nil
}

// normalise fills Status and the Diagnostic type and flattens the diagnostic to one line.
func normalise(rc RcptStatus) RcptStatus {
	rc.Diagnostic = strings.Join(strings.Fields(stripControl(rc.Diagnostic)), " ")
	if rc.Diagnostic != "" && !diagTypeRE.MatchString(rc.Diagnostic) {
		// "smtp" says the text is an SMTP reply (RFC 3464 §2.3.6); anything else (a connection
		// error, an expiry) is our own diagnostic.
		typ := "x-meshd; "
		if replyRE.MatchString(rc.Diagnostic) {
			typ = "smtp; "
		}
		rc.Diagnostic = typ + rc.Diagnostic
	}
	if rc.Status == "" {
		if m := enhancedRE.FindStringSubmatch(rc.Diagnostic); m != nil {
			rc.Status = m[1]
		}
	}
	if rc.Status == "" {
		rc.Status = map[string]string{ActionFailed: "5.0.0", ActionDelayed: "4.0.0"}[rc.Action]
		if rc.Status == "" {
			rc.Status = "2.0.0"
		}
	}
	if rc.Action != ActionDelayed {
		rc.WillRetryUntil = time.Time{}
	}
	return rc
}

// remoteMTA turns "host", "host:port" or an address into an RFC 3464 mta-name.
func remoteMTA(s string) string {
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	s = strings.Trim(s, "[]")
	if ip := net.ParseIP(s); ip != nil {
		if ip.To4() == nil {
			return "[IPv6:" + ip.String() + "]"
		}
		return "[" + ip.String() + "]"
	}
	return strings.TrimSuffix(s, ".")
}

// addrField renders an address with its type: "rfc822; a@b" or, for a non-ASCII address,
// "utf-8; a@b" (RFC 6533 §3). It reports whether the utf-8 type was needed.
func addrField(addr, defType string) (string, bool) {
	typ := defType
	if t, a, ok := strings.Cut(addr, ";"); ok && diagTypeRE.MatchString(t+";") {
		typ, addr = strings.ToLower(strings.TrimSpace(t)), strings.TrimSpace(a)
	}
	if !isASCII(addr) {
		return "utf-8; " + addr, true
	}
	return typ + "; " + addr, false
}

func statusPart(r Report, rcpts []RcptStatus) ([]byte, bool) {
	var b bytes.Buffer
	global := false
	mta := r.ReportingMTA
	if mta == "" {
		mta = r.Hostname
	}
	writeHeader(&b, "Reporting-MTA", "dns; "+mta)
	if r.EnvID != "" {
		writeHeader(&b, "Original-Envelope-Id", r.EnvID)
	}
	if r.ReceivedFromMTA != "" {
		writeHeader(&b, "Received-From-MTA", "dns; "+remoteMTA(r.ReceivedFromMTA))
	}
	if !r.ArrivalDate.IsZero() {
		writeHeader(&b, "Arrival-Date", r.ArrivalDate.Format(time.RFC1123Z))
	}
	for _, rc := range rcpts {
		b.WriteString("\r\n")
		if rc.Original != "" {
			v, u := addrField(rc.Original, "rfc822")
			global = global || u
			writeHeader(&b, "Original-Recipient", v)
		}
		v, u := addrField(rc.Final, "rfc822")
		global = global || u
		writeHeader(&b, "Final-Recipient", v)
		writeHeader(&b, "Action", rc.Action)
		writeHeader(&b, "Status", rc.Status)
		if rc.RemoteMTA != "" {
			writeHeader(&b, "Remote-MTA", "dns; "+remoteMTA(rc.RemoteMTA))
		}
		if rc.Diagnostic != "" {
			global = global || !isASCII(rc.Diagnostic)
			writeHeader(&b, "Diagnostic-Code", rc.Diagnostic)
		}
		if !rc.LastAttempt.IsZero() {
			writeHeader(&b, "Last-Attempt-Date", rc.LastAttempt.Format(time.RFC1123Z))
		}
		if !rc.WillRetryUntil.IsZero() {
			writeHeader(&b, "Will-Retry-Until", rc.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	return b.Bytes(), global
}

type part struct {
	header string
	body   []byte
}

// makeBoundary derives a boundary from the content, so equal reports give equal bytes, and
// makes sure no part contains it.
func makeBoundary(seed string, parts []part) string {
	for n := 0; ; n++ {
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00%d", seed, n)
		for _, p := range parts {
			h.Write(p.body)
		}
		boundary := "=_meshd-dsn-" + hex.EncodeToString(h.Sum(nil)[:12])
		clash := false
		for _, p := range parts {
			if bytes.Contains(p.body, []byte("--"+boundary)) {
				clash = true
			}
		}
		if !clash {
			return boundary
		}
	}
}

func charset(b []byte) string {
	if has8bit(b) {
		return "utf-8"
	}
	return "us-ascii"
}

func cte(b []byte) string {
	if has8bit(b) {
		return "8bit"
	}
	return "7bit"
}

func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// encodeWord makes a non-ASCII header value an RFC 2047 encoded-word.
func encodeWord(s string) string {
	if isASCII(s) {
		return s
	}
	return mime.QEncoding.Encode("utf-8", s)
}

func isASCII(s string) bool { return !has8bit([]byte(s)) }

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func stripControl(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
