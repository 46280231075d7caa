package milter_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/edge/milter"
	"github.com/meshd/meshd/edge/milter/miltertest"
	"github.com/meshd/meshd/harness/extern"
)

func msg(headers string, body string) milter.Message {
	return milter.Message{
		ClientAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 4025},
		LocalAddr:  &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25},
		Helo:       "client.example", QueueID: "q1",
		From: "alice@example.org", Rcpts: []string{"bob@example.com", "carol@example.com"},
		Data: []byte(strings.ReplaceAll(headers, "\n", "\r\n") + "\r\n" + body),
	}
}

func chain(t *testing.T, cfgs ...milter.Config) *milter.Chain {
	t.Helper()
	if err := milter.ValidateAll("filters.milters", cfgs); err != nil {
		t.Fatal(err)
	}
	return milter.New(cfgs, "mx.example.com", milter.NewMetrics())
}

func TestChainActions(t *testing.T) {
	m := miltertest.Start(t, "one")
	c := chain(t, milter.Config{Name: "one", Address: m.Addr, Timeout: 5 * time.Second})
	base := "Received: from client\nSubject: hello\nX-Delete-Me: 1\nX-Test-Add-Rcpt: dave@example.com\nX-Test-Del-Rcpt: carol@example.com\nX-Test-From: bounce@example.org\n"
	tests := []struct {
		actions string
		check   func(t *testing.T, v *milter.Verdict)
	}{
		{"", func(t *testing.T, v *milter.Verdict) {
			if v.Action != milter.Accept || v.Changed {
				t.Errorf("verdict %v changed %v, want accept unchanged", v.Action, v.Changed)
			}
		}},
		{"reject", func(t *testing.T, v *milter.Verdict) {
			if v.Action != milter.Reject || v.Reply.String() != "550 5.7.1 rejected by one" || v.Milter != "one" {
				t.Errorf("verdict %v %q by %q, want reject 550 5.7.1 rejected by one", v.Action, v.Reply, v.Milter)
			}
		}},
		{"tempfail", func(t *testing.T, v *milter.Verdict) {
			if v.Action != milter.TempFail || v.Reply.Code != 451 || !strings.Contains(v.Reply.Text, "try later") {
				t.Errorf("verdict %v %q", v.Action, v.Reply)
			}
		}},
		{"discard", func(t *testing.T, v *milter.Verdict) {
			if v.Action != milter.Discard {
				t.Errorf("verdict %v, want discard", v.Action)
			}
		}},
		{"quarantine add-header", func(t *testing.T, v *milter.Verdict) {
			if v.Action != milter.Quarantine || v.Reason != "held by one" {
				t.Errorf("verdict %v reason %q, want quarantine held by one", v.Action, v.Reason)
			}
			if !strings.Contains(string(v.Data), "X-Milter-one: seen\r\n") {
				t.Errorf("quarantined message lacks the milter's header:\n%s", v.Data)
			}
		}},
		{"add-header change-subject delete-header add-rcpt del-rcpt change-from", func(t *testing.T, v *milter.Verdict) {
			d := string(v.Data)
			if v.Action != milter.Accept || !v.Changed {
				t.Fatalf("verdict %v changed %v", v.Action, v.Changed)
			}
			for _, want := range []string{"X-Milter-one: seen\r\n", "Subject: [one] hello\r\n", "\r\n\r\nbody line\r\n"} {
				if !strings.Contains(d, want) {
					t.Errorf("message lacks %q:\n%s", want, d)
				}
			}
			if strings.Contains(d, "X-Delete-Me") {
				t.Errorf("X-Delete-Me not deleted:\n%s", d)
			}
			if got := strings.Join(v.Rcpts, ","); got != "bob@example.com,dave@example.com" {
				t.Errorf("rcpts %s, want bob and dave", got)
			}
			if v.From != "bounce@example.org" {
				t.Errorf("from %q, want bounce@example.org", v.From)
			}
			if !strings.HasPrefix(d, "Received: from client\r\n") {
				t.Errorf("first field moved:\n%s", d)
			}
		}},
		{"replace-body", func(t *testing.T, v *milter.Verdict) {
			if !strings.HasSuffix(string(v.Data), "\r\n\r\nreplaced by one\r\n") {
				t.Errorf("body not replaced:\n%s", v.Data)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.actions, " ", "+"), func(t *testing.T) {
			v := c.Check(context.Background(), msg(base+"X-Test-Milter: "+tt.actions+"\n", "body line\r\n"))
			for _, s := range v.Steps {
				if s.Err != "" {
					t.Fatalf("milter failed: %s", s.Err)
				}
			}
			tt.check(t, v)
		})
	}
	seen := m.Seen()
	if len(seen) == 0 || seen[0].Helo != "client.example" || seen[0].Client != "127.0.0.9" || seen[0].From != "alice@example.org" ||
		strings.Join(seen[0].Rcpts, ",") != "bob@example.com,carol@example.com" || seen[0].Body != "body line\r\n" {
		t.Errorf("milter saw %+v", seen)
	}
}

// TestChainOrder: the second milter sees the first one's changes.
func TestChainOrder(t *testing.T) {
	a, b := miltertest.Start(t, "a"), miltertest.Start(t, "b")
	c := chain(t, milter.Config{Name: "a", Address: a.Addr}, milter.Config{Name: "b", Address: b.Addr})
	v := c.Check(context.Background(), msg("Subject: x\nX-Test-Milter: add-header add-rcpt\nX-Test-Add-Rcpt: eve@example.com\n", "hi\r\n"))
	if v.Action != milter.Accept {
		t.Fatalf("verdict %v %v", v.Action, v.Steps)
	}
	sb := b.Seen()
	if len(sb) != 1 || sb[0].Headers["X-Milter-A"] == nil || !strings.Contains(strings.Join(sb[0].Rcpts, ","), "eve@example.com") {
		t.Fatalf("b did not see a's header and recipient: %+v", sb)
	}
	if a.Seen()[0].Headers["X-Milter-B"] != nil {
		t.Fatalf("a saw b's header")
	}
	// b's header is after a's: each adds at the end in its turn.
	d := string(v.Data)
	if i, j := strings.Index(d, "X-Milter-a"), strings.Index(d, "X-Milter-b"); i < 0 || j < i {
		t.Fatalf("headers out of order:\n%s", d)
	}
	// A rejecting first milter: the second is never asked.
	n := len(b.Seen())
	v = c.Check(context.Background(), msg("Subject: x\nX-Test-Milter: reject\n", "hi\r\n"))
	if v.Action != milter.Reject || v.Milter != "a" || len(b.Seen()) != n {
		t.Fatalf("verdict %v by %s, b asked %d times", v.Action, v.Milter, len(b.Seen())-n)
	}
}

// TestChainRcpt: a milter with the rcpt phase is asked at RCPT time and
// its refusal is returned as it wrote it; one without the phase is not
// asked; a failing one applies its on_failure to the RCPT. After DATA, a
// recipient refused at the replayed RCPT or deleted at the end of the
// message is listed in Removed with the milter that took it out.
func TestChainRcpt(t *testing.T) {
	a, b := miltertest.Start(t, "a"), miltertest.Start(t, "b")
	c := chain(t, milter.Config{Name: "a", Address: a.Addr}, milter.Config{Name: "b", Address: b.Addr, Phases: []string{"header", "body"}})
	m := msg("", "")
	if name, r := c.CheckRcpt(context.Background(), m, "bob@example.com"); r != nil {
		t.Fatalf("bob refused by %s: %v", name, r)
	}
	name, r := c.CheckRcpt(context.Background(), m, "refuse-a-carol@example.com")
	if r == nil || name != "a" || r.String() != "550 5.7.1 <refuse-a-carol@example.com> refused by a" {
		t.Fatalf("refuse-a-carol: %s %v, want a's 550 5.7.1", name, r)
	}
	if got := strings.Join(a.Rcpts(), ","); got != "bob@example.com,refuse-a-carol@example.com" {
		t.Fatalf("a asked about %s", got)
	}
	if got := b.Rcpts(); len(got) != 0 {
		t.Fatalf("b (no rcpt phase) asked at RCPT about %v", got)
	}
	if len(a.Seen()) != 0 {
		t.Fatalf("a RCPT check went on to the end of a message: %+v", a.Seen())
	}

	// After DATA: b refuses at the replayed RCPT, a deletes at the end.
	m = msg("Subject: x\nX-Test-Milter: del-rcpt\nX-Test-Del-Rcpt: carol@example.com\n", "hi\r\n")
	m.Rcpts = []string{"bob@example.com", "carol@example.com", "refuse-b-dave@example.com"}
	c = chain(t, milter.Config{Name: "a", Address: a.Addr}, milter.Config{Name: "b", Address: b.Addr})
	c.Set([]milter.Config{{Name: "b", Address: b.Addr, Phases: []string{"header", "body"}}, {Name: "a", Address: a.Addr, Phases: []string{"header", "body"}}})
	v := c.Check(context.Background(), m)
	if v.Action != milter.Accept || strings.Join(v.Rcpts, ",") != "bob@example.com" {
		t.Fatalf("verdict %v rcpts %v steps %+v", v.Action, v.Rcpts, v.Steps)
	}
	want := []milter.Removed{
		{Addr: "refuse-b-dave@example.com", Milter: "b", Reply: milter.Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: "<refuse-b-dave@example.com> refused by b"}},
		{Addr: "carol@example.com", Milter: "b"},
	}
	if fmt.Sprint(v.Removed) != fmt.Sprint(want) {
		t.Fatalf("removed %+v, want %+v", v.Removed, want)
	}

	// A dead milter with the rcpt phase: tempfail refuses the RCPT for
	// now, accept lets it through.
	ln := miltertest.Listen(t)
	dead := "tcp:" + ln.Addr().String()
	ln.Close()
	for mode, want := range map[string]string{"tempfail": "451 4.7.1 Content filter unavailable, try again later", "accept": "<nil>"} {
		c := chain(t, milter.Config{Name: "dead", Address: dead, Timeout: 300 * time.Millisecond, OnFailure: mode})
		if _, r := c.CheckRcpt(context.Background(), msg("", ""), "bob@example.com"); fmt.Sprint(r) != want && (r == nil || r.String() != want) {
			t.Errorf("%s: RCPT reply %v, want %s", mode, r, want)
		}
	}
}

// TestChainFailure: a dead milter, a silent one and a slow one, under
// both failure modes.
func TestChainFailure(t *testing.T) {
	silent := miltertest.Listen(t)
	deadLn := miltertest.Listen(t)
	dead := "tcp:" + deadLn.Addr().String()
	deadLn.Close()
	slow := miltertest.Start(t, "slow")
	slow.SetDelay(3 * time.Second)
	for _, tt := range []struct {
		name, addr, body string
	}{
		{"dead", dead, ""},
		{"silent", "tcp:" + silent.Addr().String(), ""},
		{"slow", slow.Addr, "X-Test-Milter: slow\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []string{"tempfail", "accept"} {
				c := chain(t, milter.Config{Name: tt.name, Address: tt.addr, Timeout: 300 * time.Millisecond, OnFailure: mode})
				start := time.Now()
				v := c.Check(context.Background(), msg("Subject: x\n"+tt.body, "hi\r\n"))
				if el := time.Since(start); el > 2*time.Second {
					t.Errorf("%s: check took %s with a 300ms timeout", mode, el)
				}
				want := milter.TempFail
				if mode == "accept" {
					want = milter.Accept
				}
				if v.Action != want || len(v.Steps) != 1 || v.Steps[0].Result != "failed" {
					t.Errorf("%s: verdict %v steps %+v, want %v after a failure", mode, v.Action, v.Steps, want)
				}
				if want == milter.TempFail && v.Reply.String() != "451 4.7.1 Content filter unavailable, try again later" {
					t.Errorf("reply %q", v.Reply)
				}
			}
		})
	}
	// The session's context ends the check too (a client that went away).
	c := chain(t, milter.Config{Name: "silent", Address: "tcp:" + silent.Addr().String(), Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if v := c.Check(ctx, msg("Subject: x\n", "")); v.Action != milter.TempFail || time.Since(start) > 5*time.Second {
		t.Fatalf("verdict %v after %s", v.Action, time.Since(start))
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		c    milter.Config
		want string
	}{
		{milter.Config{Address: "tcp:127.0.0.1"}, "filters.milters[0].address"},
		{milter.Config{Address: "udp:127.0.0.1:1"}, "filters.milters[0].address"},
		{milter.Config{Address: "unix:relative"}, "filters.milters[0].address"},
		{milter.Config{Address: "tcp:127.0.0.1:1", Timeout: time.Hour}, "filters.milters[0].timeout"},
		{milter.Config{Address: "tcp:127.0.0.1:1", Phases: []string{"envelope"}}, "filters.milters[0].phases[0]"},
		{milter.Config{Address: "tcp:127.0.0.1:1", OnFailure: "reject"}, "filters.milters[0].on_failure"},
		{milter.Config{Address: "inet:11332@127.0.0.1", Name: "a b"}, "filters.milters[0].name"},
	} {
		err := milter.ValidateAll("filters.milters", []milter.Config{tt.c})
		if err == nil || !strings.Contains(err.Error(), tt.want+":") {
			t.Errorf("%+v: error %v, want one naming %s", tt.c, err, tt.want)
		}
	}
	ok := []milter.Config{{Address: "inet:11332@127.0.0.1"}, {Address: "unix:/run/x.sock", Name: "x"}}
	if err := milter.ValidateAll("filters.milters", ok); err != nil {
		t.Fatal(err)
	}
	if ok[0].Name != "inet:11332@127.0.0.1" || ok[0].Timeout != 30*time.Second || ok[0].OnFailure != "tempfail" || strings.Join(ok[0].Phases, ",") != "rcpt,header,body" {
		t.Fatalf("defaults not filled in: %+v", ok[0])
	}
	dup := []milter.Config{{Address: "tcp:127.0.0.1:1", Name: "x"}, {Address: "tcp:127.0.0.1:2", Name: "x"}}
	if err := milter.ValidateAll("filters.milters", dup); err == nil || !strings.Contains(err.Error(), "filters.milters[1].name") {
		t.Fatalf("duplicate names: %v", err)
	}
}

// TestRspamd: Debian's rspamd in milter mode (rspamd_proxy, milter = yes)
// rejects GTUBE with its own reply and adds its headers to clean mail.
func TestRspamd(t *testing.T) {
	r := extern.StartRspamd(t, "")
	c := chain(t, milter.Config{Name: "rspamd", Address: "unix:" + r.Socket, Timeout: 20 * time.Second})
	gtube := "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
	v := c.Check(context.Background(), msg("From: alice@example.org\nTo: bob@example.com\nSubject: spam\nMessage-ID: <g@example.org>\nDate: Mon, 07 Dec 2026 10:00:00 +0000\n", "This is spam.\r\n"+gtube+"\r\n"))
	if v.Action != milter.Reject || v.Reply.Code != 554 || !strings.Contains(v.Reply.Text, "Gtube") {
		t.Fatalf("GTUBE: verdict %v %q steps %+v, want rspamd's 554 reject", v.Action, v.Reply, v.Steps)
	}
	t.Logf("GTUBE: %s", v.Reply)
	v = c.Check(context.Background(), msg("From: alice@example.org\nTo: bob@example.com\nSubject: lunch\nMessage-ID: <h@example.org>\nDate: Mon, 07 Dec 2026 10:00:00 +0000\n", "Lunch at noon?\r\n"))
	if v.Action != milter.Accept || !strings.Contains(string(v.Data), "X-Spamd-Result:") || !strings.Contains(string(v.Data), "X-Rspamd-Server:") {
		t.Fatalf("clean: verdict %v steps %+v, message:\n%s", v.Action, v.Steps, v.Data)
	}
	t.Logf("clean: %v edits %v", v.Action, v.Steps[0].Edits)
}
