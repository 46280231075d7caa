package milter

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Action is what the chain decided for a message.
type Action int

// Verdict actions.
const (
	// Accept: queue the message (as the milters left it).
	Accept Action = iota
	// Reject: refuse it with Verdict.Reply (5xx).
	Reject
	// TempFail: refuse it with Verdict.Reply (4xx); the client tries again.
	TempFail
	// Discard: answer 250 and drop it.
	Discard
	// Quarantine: queue it held (Verdict.Reason says why).
	Quarantine
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case TempFail:
		return "tempfail"
	case Discard:
		return "discard"
	case Quarantine:
		return "quarantine"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Reply is an SMTP reply a milter asked for.
type Reply struct {
	Code     int
	Enhanced [3]int
	Text     string
}

func (r Reply) String() string {
	return strconv.Itoa(r.Code) + " " + strconv.Itoa(r.Enhanced[0]) + "." + strconv.Itoa(r.Enhanced[1]) + "." + strconv.Itoa(r.Enhanced[2]) + " " + r.Text
}

// Verdict is the chain's decision and the message as the milters left it.
type Verdict struct {
	Action Action
	// Reply is the SMTP reply of Reject and TempFail.
	Reply Reply
	// Reason is a quarantining milter's reason.
	Reason string
	// Milter names the milter that decided a Reject, TempFail, Discard
	// or Quarantine (empty for Accept).
	Milter string
	// From, Rcpts and Data are the envelope and message after every
	// milter's changes (Data is CRLF throughout).
	From  string
	Rcpts []string
	Data  []byte
	// Changed reports whether any milter changed the envelope or message.
	Changed bool
	// Removed lists the recipients of the envelope a milter took out
	// after DATA (refused at the replayed RCPT, or SMFIR_DELRCPT at the
	// end of the message), in order: they are no longer in Rcpts, and
	// the client had its 250 for them, so the sender is told by DSN.
	Removed []Removed
	// Steps has one entry per milter asked, in order.
	Steps []Step
}

// Removed is one recipient a milter took out of the envelope after DATA.
type Removed struct {
	Addr   string
	Milter string
	// Reply is the milter's refusal of the replayed RCPT; zero for a
	// recipient deleted at the end of the message (SMFIR_DELRCPT).
	Reply Reply
}

// Step is what one milter said.
type Step struct {
	Milter string
	// Result is continue, accept, reject, tempfail, discard, quarantine,
	// or failed (Err says why, and the milter's on_failure was applied).
	Result   string
	Err      string   `json:",omitempty"`
	Edits    []string `json:",omitempty"` // the changes applied, e.g. "add_header X-Spam"
	Duration time.Duration
}

var enhancedRe = regexp.MustCompile(`^([245])\.(\d{1,3})\.(\d{1,3})(\s+|$)`)

// parseReply reads a milter's SMTP reply ("554 5.7.1 text", possibly
// several lines "554-5.7.1 a\r\n554 5.7.1 b") into a Reply. Lines are
// joined with a space: one line is what every client shows.
func parseReply(code int, raw string) Reply {
	r := Reply{Code: code}
	var texts []string
	for i, line := range strings.Split(strings.ReplaceAll(raw, "\r\n", "\n"), "\n") {
		if len(line) >= 4 && line[:3] == strconv.Itoa(code) && (line[3] == ' ' || line[3] == '-') {
			line = line[4:]
		} else if len(line) == 3 && line == strconv.Itoa(code) {
			line = ""
		}
		if m := enhancedRe.FindStringSubmatch(line); m != nil {
			if i == 0 {
				a, _ := strconv.Atoi(m[1])
				b, _ := strconv.Atoi(m[2])
				c, _ := strconv.Atoi(m[3])
				r.Enhanced = [3]int{a, b, c}
			}
			line = line[len(m[0]):]
		}
		if line = strings.TrimSpace(sanitize(line)); line != "" {
			texts = append(texts, line)
		}
	}
	if r.Enhanced[0] != code/100 {
		r.Enhanced = [3]int{code / 100, 7, 1}
	}
	r.Text = strings.Join(texts, " ")
	if r.Text == "" {
		r.Text = "Message refused by content filter"
		if code/100 == 4 {
			r.Text = "Content filter asks to try again later"
		}
	}
	return r
}

// sanitize keeps printable ASCII (and tabs, turned into spaces): a
// milter's reply text goes out on the SMTP connection and into logs.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case r < ' ' || r > '~':
			return -1
		}
		return r
	}, s)
}
