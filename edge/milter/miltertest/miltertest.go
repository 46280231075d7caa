// Package miltertest is a small milter for tests, built on the server side
// of github.com/d--j/go-milter: it does what the message's X-Test-Milter
// header asks (each word an action), records what it saw, and lets a test
// make it slow or kill it. It stands in for the milters a site runs
// (clamav-milter needs a clamd with a signature database, which no package
// ships) and, unlike rspamd, can be asked for every milter action.
//
// Actions (the header may list several, "add-header add-rcpt"):
//
//	reject        550 5.7.1 rejected by NAME
//	tempfail      451 4.7.1 try later (NAME)
//	discard       discard the message
//	quarantine    quarantine "held by NAME"
//	add-header    add X-Milter-NAME: seen
//	change-subject  Subject: [NAME] old subject
//	delete-header delete X-Delete-Me
//	add-rcpt      add the recipient named in X-Test-Add-Rcpt
//	del-rcpt      remove the recipient named in X-Test-Del-Rcpt
//	change-from   set the sender to the one in X-Test-From
//	replace-body  replace the body with "replaced by NAME\r\n"
//	slow          wait Milter.Delay before deciding
//
// At RCPT time it refuses any recipient whose local part begins with
// "refuse-NAME-" (550 5.7.1 <ADDR> refused by NAME) and records the
// RCPTs it was asked about (Rcpts).
package miltertest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d--j/go-milter/mailfilter"
)

// Milter is a running test milter.
type Milter struct {
	Name string
	// Addr is its address as filters.milters[].address spells it.
	Addr  string
	f     *mailfilter.MailFilter
	mu    sync.Mutex
	seen  []Seen
	rcpts []string
	delay time.Duration
}

// Seen is one message as the milter got it.
type Seen struct {
	From    string
	Rcpts   []string
	Headers map[string][]string // canonical field names
	Body    string
	Helo    string
	Client  string
}

// Start runs a test milter on a free loopback port until the test ends.
func Start(t testing.TB, name string) *Milter {
	t.Helper()
	m := &Milter{Name: name, delay: 5 * time.Second}
	f, err := mailfilter.New("tcp", "127.0.0.1:0", m.decide, mailfilter.WithDecisionAt(mailfilter.DecisionAtEndOfMessage),
		mailfilter.WithRcptToValidator(m.validateRcpt))
	if err != nil {
		t.Fatalf("miltertest: %v", err)
	}
	m.f = f
	m.Addr = "tcp:" + f.Addr().String()
	t.Cleanup(m.Stop)
	return m
}

// SetDelay sets how long "slow" waits.
func (m *Milter) SetDelay(d time.Duration) {
	m.mu.Lock()
	m.delay = d
	m.mu.Unlock()
}

// Stop closes the listener and every session: the milter is dead.
func (m *Milter) Stop() { m.f.Close() }

// Seen returns the messages the milter was shown, oldest first.
func (m *Milter) Seen() []Seen {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Seen(nil), m.seen...)
}

// Rcpts returns the recipients the milter was asked about at RCPT, in
// order (a replayed transaction asks again).
func (m *Milter) Rcpts() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.rcpts...)
}

func (m *Milter) validateRcpt(_ context.Context, in *mailfilter.RcptToValidationInput) (mailfilter.Decision, error) {
	a := in.RcptTo.Addr
	m.mu.Lock()
	m.rcpts = append(m.rcpts, a)
	m.mu.Unlock()
	if strings.HasPrefix(strings.ToLower(a), "refuse-"+strings.ToLower(m.Name)+"-") {
		return mailfilter.CustomErrorResponse(550, "5.7.1 <"+a+"> refused by "+m.Name), nil
	}
	return mailfilter.Accept, nil
}

func (m *Milter) decide(ctx context.Context, trx mailfilter.Trx) (mailfilter.Decision, error) {
	s := Seen{From: trx.MailFrom().Addr, Headers: map[string][]string{}, Helo: trx.Helo().Name}
	if c := trx.Connect(); c != nil {
		s.Client = c.Addr
	}
	for _, r := range trx.RcptTos() {
		s.Rcpts = append(s.Rcpts, r.Addr)
	}
	for f := trx.Headers().Fields(); f.Next(); {
		s.Headers[f.CanonicalKey()] = append(s.Headers[f.CanonicalKey()], f.UnfoldedValue())
	}
	if b := trx.Body(); b != nil {
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := b.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		s.Body = sb.String()
	}
	m.mu.Lock()
	m.seen = append(m.seen, s)
	delay := m.delay
	m.mu.Unlock()

	h := trx.Headers()
	var decision mailfilter.Decision = mailfilter.Accept
	for _, act := range strings.Fields(h.Value("X-Test-Milter")) {
		switch act {
		case "reject":
			decision = mailfilter.CustomErrorResponse(550, "5.7.1 rejected by "+m.Name)
		case "tempfail":
			decision = mailfilter.CustomErrorResponse(451, "4.7.1 try later ("+m.Name+")")
		case "discard":
			decision = mailfilter.Discard
		case "quarantine":
			decision = mailfilter.QuarantineResponse("held by " + m.Name)
		case "add-header":
			h.Add("X-Milter-"+m.Name, "seen")
		case "change-subject":
			h.SetSubject("[" + m.Name + "] " + strings.TrimSpace(h.Value("Subject")))
		case "delete-header":
			for f := h.Fields(); f.Next(); {
				if f.CanonicalKey() == "X-Delete-Me" {
					f.Del()
				}
			}
		case "add-rcpt":
			trx.AddRcptTo(strings.TrimSpace(h.Value("X-Test-Add-Rcpt")), "")
		case "del-rcpt":
			trx.DelRcptTo(strings.TrimSpace(h.Value("X-Test-Del-Rcpt")))
		case "change-from":
			trx.ChangeMailFrom(strings.TrimSpace(h.Value("X-Test-From")), "")
		case "replace-body":
			trx.ReplaceBody(strings.NewReader("replaced by " + m.Name + "\r\n"))
		case "slow":
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
		}
	}
	return decision, nil
}

// Listen is net.Listen on a free loopback port for a dead-milter test: a
// listener that accepts connections and never answers.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}
