package dsn

import (
	"bytes"
	"strings"
	"time"

	"github.com/meshd/meshd/header"
)

// foldAt is where header lines are folded when a space allows it (RFC 5322 §2.1.1 "SHOULD").
const foldAt = 78

// writeHeader writes "Name: value" CRLF, folded at spaces to about 78 columns and hard-split
// so that no line exceeds 998 octets.
func writeHeader(b *bytes.Buffer, name, value string) {
	line := name + ":"
	for _, tok := range strings.Fields(value) {
		for len(tok) > maxLine-1 { // a token that cannot fit on any line: split it
			if len(line) > 1 {
				b.WriteString(line + "\r\n")
			}
			b.WriteString(" " + tok[:maxLine-1] + "\r\n")
			tok, line = tok[maxLine-1:], ""
		}
		if tok == "" {
			continue
		}
		switch {
		case line == "":
			line = " " + tok
		case len(line)+1+len(tok) > foldAt && strings.TrimSpace(line) != name+":":
			b.WriteString(line + "\r\n")
			line = " " + tok
		default:
			line += " " + tok
		}
	}
	b.WriteString(line + "\r\n")
}

// original is what the notification quotes from the original message.
type original struct {
	raw       []byte // CRLF line ends
	header    []byte // header section with its final CRLF, without the blank line
	messageID string
	subject   string
}

func parseOriginal(msg []byte) original {
	raw := header.ToCRLF(msg)
	o := original{raw: raw, header: raw}
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		o.header = raw[:i+2]
	} else if bytes.HasPrefix(raw, []byte("\r\n")) {
		o.header = nil
	}
	var name, value string
	flush := func() {
		switch strings.ToLower(name) {
		case "message-id":
			if o.messageID == "" {
				o.messageID = strings.TrimSpace(value)
			}
		case "subject":
			if o.subject == "" {
				o.subject = strings.Join(strings.Fields(value), " ")
			}
		}
	}
	for _, line := range strings.Split(string(o.header), "\r\n") {
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			value += line
			continue
		}
		flush()
		name, value, _ = strings.Cut(line, ":")
	}
	flush()
	if hasControl(o.messageID) || strings.ContainsAny(o.messageID, " ") || !strings.HasPrefix(o.messageID, "<") {
		o.messageID = ""
	}
	o.subject = stripControl(o.subject)
	if len(o.subject) > 200 {
		o.subject = o.subject[:200] + "..."
	}
	return o
}

// originalPart chooses the form of the original (see the package comment); nil when there is none.
func originalPart(r Report, o original) (string, []byte) {
	if len(o.raw) == 0 {
		return "", nil
	}
	full := len(r.Original) <= r.maxFull()
	switch strings.ToUpper(r.Ret) {
	case RetFull:
		full = true
	case RetHdrs:
		full = false
	}
	if full && longestLine(o.raw) <= maxLine {
		return "message/rfc822", o.raw
	}
	return "text/rfc822-headers", splitLongLines(o.header)
}

func (r Report) maxFull() int {
	if r.MaxFullBytes > 0 {
		return r.MaxFullBytes
	}
	return DefaultMaxFullBytes
}

func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte("\r\n"))
		longest = max(longest, len(line))
		b = rest
	}
	return longest
}

// splitLongLines folds header lines longer than 998 octets (continuations start with a space).
func splitLongLines(b []byte) []byte {
	if longestLine(b) <= maxLine {
		return b
	}
	var out bytes.Buffer
	for len(b) > 0 {
		line, rest, found := bytes.Cut(b, []byte("\r\n"))
		for len(line) > maxLine {
			out.Write(line[:maxLine])
			out.WriteString("\r\n ")
			line = line[maxLine:]
		}
		out.Write(line)
		if found {
			out.WriteString("\r\n")
		}
		b = rest
	}
	return out.Bytes()
}

// subject summarises the report: one word for the outcome and the original subject.
func subject(rcpts []RcptStatus, origSubject string) string {
	seen := map[string]bool{}
	for _, rc := range rcpts {
		seen[rc.Action] = true
	}
	prefix := "Delivery status"
	switch {
	case len(seen) == 1 && seen[ActionFailed]:
		prefix = "Delivery failed"
	case len(seen) == 1 && seen[ActionDelayed]:
		prefix = "Delivery delayed"
	case len(seen) == 1 && seen[ActionRelayed]:
		prefix = "Relayed"
	case !seen[ActionFailed] && !seen[ActionDelayed]:
		prefix = "Delivered"
	}
	if origSubject == "" {
		origSubject = "(no subject)"
	}
	return prefix + ": " + origSubject
}

// actionText introduces the recipients of one action in the human-readable part.
var actionText = []struct{ action, text string }{
	{ActionFailed, "Your message could not be delivered to the recipients below. The error is permanent: the mail system will not try again."},
	{ActionDelayed, "Your message has not been delivered yet to the recipients below. The mail system keeps trying%s; you do not need to send it again."},
	{ActionDelivered, "Your message was delivered to the recipients below."},
	{ActionRelayed, "Your message was handed on for the recipients below to a mail system that does not report delivery, so no further notice will come for them."},
	{ActionExpanded, "Your message was delivered to the recipients below, which are lists or aliases that passed it on to their members."},
}

func humanText(r Report, rcpts []RcptStatus, o original) []byte {
	var b strings.Builder
	para := func(s string) {
		for _, l := range wrap(s, 72) {
			b.WriteString(l + "\r\n")
		}
		b.WriteString("\r\n")
	}
	para("This is the mail system at host " + r.Hostname + ".")
	for _, at := range actionText {
		var group []RcptStatus
		var until time.Time
		for _, rc := range rcpts {
			if rc.Action == at.action {
				group = append(group, rc)
				if rc.WillRetryUntil.After(until) {
					until = rc.WillRetryUntil
				}
			}
		}
		if len(group) == 0 {
			continue
		}
		intro := at.text
		if at.action == ActionDelayed {
			u := ""
			if !until.IsZero() {
				u = " until " + until.UTC().Format("Mon, 02 Jan 2006 15:04 MST")
			}
			intro = strings.Replace(intro, "%s", u, 1)
		}
		para(intro)
		for _, rc := range group {
			line := "<" + rc.Final + ">"
			if d := diagnosticText(rc.Diagnostic); d != "" {
				line += ": " + d
			}
			if rc.RemoteMTA != "" {
				line += " (reported by " + remoteMTA(rc.RemoteMTA) + ")"
			}
			for i, l := range wrap(line, 72) {
				b.WriteString(map[bool]string{true: "    ", false: "        "}[i == 0] + l + "\r\n")
			}
		}
		b.WriteString("\r\n")
	}
	var about []string
	if o.subject != "" {
		about = append(about, "subject \""+o.subject+"\"")
	}
	if o.messageID != "" {
		about = append(about, "Message-ID "+o.messageID)
	}
	if !r.ArrivalDate.IsZero() {
		about = append(about, "received "+r.ArrivalDate.UTC().Format("Mon, 02 Jan 2006 15:04 MST"))
	}
	if len(about) > 0 {
		para("Your message: " + strings.Join(about, ", ") + ".")
	}
	if r.Postmaster != "" {
		para("If you need help, write to the postmaster at <" + r.Postmaster + "> and include this report.")
	}
	para("A delivery report for programs and your original message (or its header) are attached.")
	return []byte(strings.TrimSuffix(b.String(), "\r\n"))
}

// diagnosticText drops the "smtp; " type for people.
func diagnosticText(d string) string {
	if i := strings.IndexByte(d, ';'); i > 0 && diagTypeRE.MatchString(d[:i+1]) {
		return strings.TrimSpace(d[i+1:])
	}
	return d
}

// wrap breaks s at spaces into lines of at most width columns where words allow, never longer
// than maxLine octets.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		for len(w) > maxLine-16 {
			if line != "" {
				lines = append(lines, line)
				line = ""
			}
			lines = append(lines, w[:maxLine-16])
			w = w[maxLine-16:]
		}
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) > width:
			lines = append(lines, line)
			line = w
		default:
			line += " " + w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
