package main_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/edge/milter/miltertest"
)

// TestE2EMilterRcptRefusals: a recipient a milter refuses never costs
// the sender a silent loss. Python's smtplib drives the session:
//
//   - "edge" has the rcpt phase: its refusal of refuse-edge-carol is the
//     reply to that RCPT, word for word, and the message goes to bob
//     only (no DSN: the client knew);
//   - "late" is asked after DATA only (phases header, body): the
//     recipient it refuses at the replayed RCPT, and the one "edge"
//     deletes at the end of the message (SMFIR_DELRCPT), were accepted
//     at RCPT, so the sender gets one DSN naming both (and not bob, who
//     gets the message once), recorded in the tracking log.
func TestE2EMilterRcptRefusals(t *testing.T) {
	edge, late := miltertest.Start(t, "edge"), miltertest.Start(t, "late")
	n := startNode(t, nodeOptions{Extra: map[string]any{"filters": map[string]any{"milters": []map[string]any{
		{"name": "edge", "address": edge.Addr, "timeout": "5s"},
		{"name": "late", "address": late.Addr, "timeout": "5s", "phases": []string{"header", "body"}},
	}}}})

	// RCPT time.
	subject := uniq(t) + "-rcpt"
	msg := "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: " + subject + "\r\n\r\nhello\r\n"
	r := pythonSMTP(t, n.SMTP, step("ehlo"), step("mail", "alice@example.test"), step("rcpt", "bob@example.test"),
		step("rcpt", "refuse-edge-carol@example.test"), step("data", msg))
	if r[2].Code != 250 || r[3].String() != "550 5.7.1 <refuse-edge-carol@example.test> refused by edge" || r[4].Code != 250 {
		t.Fatalf("replies %v, want bob 250, carol edge's own 550 5.7.1, DATA 250", r)
	}
	waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+subject)

	// After DATA.
	late2 := uniq(t) + "-data"
	msg = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: " + late2 + "\r\nX-Test-Milter: del-rcpt\r\n" +
		"X-Test-Del-Rcpt: dave@example.test\r\n\r\nhello again\r\n"
	r = pythonSMTP(t, n.SMTP, step("ehlo"), step("mail", "alice@example.test"), step("rcpt", "bob@example.test"),
		step("rcpt", "dave@example.test"), step("rcpt", "refuse-late-erin@example.test"), step("data", msg))
	for i, want := range []int{2, 3, 4, 5} {
		if r[want].Code != 250 {
			t.Fatalf("reply %d: %v, want 250 (all replies %v)", i, r[want], r)
		}
	}
	dsn := waitMailbox(t, n.Maildir, "alice@example.test", 20*time.Second, "Subject: "+late2, "multipart/report")
	for _, want := range []string{
		"Final-Recipient: rfc822; dave@example.test", "Final-Recipient: rfc822; refuse-late-erin@example.test",
		"Action: failed", "Status: 5.7.1", "refused by late", "removed by content filter edge",
	} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	if strings.Contains(dsn, "Final-Recipient: rfc822; bob@example.test") {
		t.Errorf("DSN names bob, who was delivered:\n%s", dsn)
	}
	waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+late2)
	n.waitQueueEmpty(20 * time.Second)
	for addr, want := range map[string]int{"bob@example.test": 1, "dave@example.test": 0, "refuse-late-erin@example.test": 0} {
		if c := countMailbox(t, n.Maildir, addr, "Subject: "+late2); c != want {
			t.Errorf("%s got the message %d times, want %d", addr, c, want)
		}
	}
	if c := countMailbox(t, n.Maildir, "alice@example.test", "multipart/report"); c != 1 {
		t.Errorf("alice got %d DSNs, want 1 (none for the RCPT-time refusal)", c)
	}
	if c := countMailbox(t, n.Maildir, "dave@example.test", "Subject: "); c != 0 {
		t.Errorf("dave got %d messages, want none", c)
	}
	if c := countMailbox(t, n.Maildir, "bob@example.test", "Subject: "+subject); c != 1 {
		t.Errorf("bob got the first message %d times, want once", c)
	}
	// Every recipient removed: nothing is queued but the DSN.
	gone := uniq(t) + "-gone"
	msg = "From: alice@example.test\r\nTo: dave@example.test\r\nSubject: " + gone + "\r\nX-Test-Milter: del-rcpt\r\n" +
		"X-Test-Del-Rcpt: dave@example.test\r\n\r\nnobody left\r\n"
	if r := pythonSMTP(t, n.SMTP, step("sendmail", "alice@example.test", []string{"dave@example.test"}, msg)); r[0].Code != 250 {
		t.Fatalf("every recipient removed: %v", r)
	}
	waitMailbox(t, n.Maildir, "alice@example.test", 20*time.Second, "Subject: "+gone, "Final-Recipient: rfc822; dave@example.test")
	n.waitQueueEmpty(20 * time.Second)
	if c := countMailbox(t, n.Maildir, "alice@example.test", "multipart/report"); c != 2 {
		t.Errorf("alice got %d DSNs, want 2", c)
	}

	log := n.trackLog(t)
	for _, want := range []string{`"event":"dsn"`, `"event":"bounced"`, `"kind":"filter"`, `"dave@example.test"`, `"refuse-late-erin@example.test"`} {
		if !strings.Contains(log, want) {
			t.Errorf("tracking log lacks %s:\n%s", want, log)
		}
	}
	{
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "refuse-edge-carol") && strings.Contains(line, `"event":"bounced"`) {
				t.Errorf("the RCPT-time refusal was bounced too: %s", line)
			}
		}
	}
	if v := n.metric(t, `meshd_filter_milter_rcpt_results_total{milter="edge",result="reject"}`); v != "1" {
		t.Errorf("edge's RCPT-time rejects = %q, want 1", v)
	}
}
