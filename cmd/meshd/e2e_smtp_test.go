package main_test

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestE2ELocalDeliverySwaks: swaks sends to a local domain; the message lands in the Maildir.
func TestE2ELocalDeliverySwaks(t *testing.T) {
	n := startNode(t, nodeOptions{})
	subject := uniq(t)
	out, code := swaks(t, "--server", n.SMTP, "--from", "sender@remote.test", "--to", "bob@example.test",
		"--header", "Subject: "+subject, "--body", "hello from swaks")
	if code != 0 {
		t.Fatalf("swaks exit %d:\n%s", code, out)
	}
	msg := waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+subject)
	if !strings.Contains(msg, "hello from swaks") {
		t.Errorf("delivered message lacks the body:\n%s", msg)
	}
	if !strings.HasPrefix(msg, "Received:") && !strings.Contains(msg, "\nReceived:") {
		t.Errorf("delivered message has no Received: header of ours:\n%s", msg)
	}
	n.waitQueueEmpty(20 * time.Second)
}

// TestE2ELocalDeliverySmtplib: Python's smtplib sends one message to two local recipients;
// each gets exactly one copy.
func TestE2ELocalDeliverySmtplib(t *testing.T) {
	n := startNode(t, nodeOptions{})
	subject := uniq(t)
	msg := "From: sender@remote.test\r\nTo: carol@example.test, dave@example.test\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@remote.test>\r\n\r\nhello from smtplib\r\n"
	r := pythonSMTP(t, n.SMTP, step("sendmail", "sender@remote.test", []string{"carol@example.test", "dave@example.test"}, msg))
	if r[0].Code != 250 || r[0].Text != "{}" {
		t.Fatalf("sendmail: %v", r[0])
	}
	for _, rcpt := range []string{"carol@example.test", "dave@example.test"} {
		waitMailbox(t, n.Maildir, rcpt, 20*time.Second, "Subject: "+subject, "hello from smtplib")
	}
	n.waitQueueEmpty(20 * time.Second)
	for _, rcpt := range []string{"carol@example.test", "dave@example.test"} {
		if got := len(mailbox(n.Maildir, rcpt)); got != 1 {
			t.Errorf("%s has %d messages, want 1", rcpt, got)
		}
	}
}

// TestE2ESMTPPolicy: refusals a public MX must give, seen by real clients.
func TestE2ESMTPPolicy(t *testing.T) {
	n := startNode(t, nodeOptions{MaxMessage: 10000, MaxRcpts: 3})
	loop := strings.Repeat("Received: from a.example by b.example; Wed, 25 Nov 2026 10:00:00 +0000\r\n", 31) +
		"Subject: looping\r\n\r\nloop\r\n"
	big := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n", 300) // ~22 KB

	t.Run("open relay refused (swaks)", func(t *testing.T) {
		out, code := swaks(t, "--server", n.SMTP, "--from", "spammer@remote.test", "--to", "victim@elsewhere.test")
		if code == 0 || !strings.Contains(out, "550 5.7.1") {
			t.Errorf("relay attempt: swaks exit %d, want a 550 5.7.1 refusal:\n%s", code, out)
		}
	})

	pyCases := []struct {
		name  string
		steps [][]any
		want  []string // reply prefix per step ("" = anything)
	}{
		{
			name:  "open relay refused (smtplib)",
			steps: [][]any{step("ehlo"), step("mail", "spammer@remote.test"), step("rcpt", "victim@elsewhere.test")},
			want:  []string{"250", "250", "550 5.7.1"},
		},
		{
			name:  "relay refused for a forged local sender",
			steps: [][]any{step("ehlo"), step("mail", "alice@example.test"), step("rcpt", "victim@elsewhere.test")},
			want:  []string{"250", "250", "550 5.7.1"},
		},
		{
			name: "relay refused for a source route through a local domain",
			steps: [][]any{step("ehlo"), step("mail", "spammer@remote.test"),
				step("docmd", "RCPT TO:<@example.test:victim@elsewhere.test>")},
			want: []string{"250", "250", "5"},
		},
		{
			name: "oversize declared with SIZE",
			steps: [][]any{step("ehlo"),
				step("sendmail", "sender@remote.test", []string{"bob@example.test"}, "Subject: big\r\n\r\n"+big)},
			want: []string{"250", "552"},
		},
		{
			name:  "too many recipients",
			steps: [][]any{step("ehlo"), step("mail", "sender@remote.test"), step("rcpt", "a@example.test"), step("rcpt", "b@example.test"), step("rcpt", "c@example.test"), step("rcpt", "d@example.test")},
			want:  []string{"250", "250", "250", "250", "250", "452"},
		},
		{
			name:  "mail loop: more than 30 Received headers",
			steps: [][]any{step("ehlo"), step("mail", "sender@remote.test"), step("rcpt", "loop@example.test"), step("data", loop)},
			want:  []string{"250", "250", "250", "554 5.4.6"},
		},
		{
			name:  "RCPT before MAIL",
			steps: [][]any{step("ehlo"), step("docmd", "RCPT TO:<bob@example.test>")},
			want:  []string{"250", "503"},
		},
		{
			name:  "DATA before RCPT",
			steps: [][]any{step("ehlo"), step("mail", "sender@remote.test"), step("docmd", "DATA")},
			want:  []string{"250", "250", "503"},
		},
		{
			name:  "MAIL before EHLO",
			steps: [][]any{step("docmd", "MAIL FROM:<sender@remote.test>")},
			want:  []string{"503"},
		},
		{
			name:  "bad sequence does not break the session",
			steps: [][]any{step("ehlo"), step("docmd", "DATA"), step("mail", "sender@remote.test"), step("rcpt", "bob@example.test"), step("data", "Subject: after 503\r\n\r\nok\r\n")},
			want:  []string{"250", "503", "250", "250", "250"},
		},
	}
	for _, tc := range pyCases {
		t.Run(tc.name, func(t *testing.T) {
			got := pythonSMTP(t, n.SMTP, tc.steps...)
			for i, want := range tc.want {
				if !strings.HasPrefix(got[i].String(), want) {
					t.Errorf("step %d %v: got %q, want prefix %q (all replies: %v)", i, tc.steps[i], got[i], want, got)
				}
			}
		})
	}

	t.Run("oversize without SIZE (swaks)", func(t *testing.T) {
		out, code := swaks(t, "--server", n.SMTP, "--from", "sender@remote.test", "--to", "bob@example.test",
			"--header", "Subject: big", "--body", big)
		if code == 0 || !strings.Contains(out, "552") {
			t.Errorf("oversize message: swaks exit %d, want 552:\n%s", code, tail([]byte(out), 2000))
		}
	})

	// Only the message accepted after a 503 may have reached bob.
	n.waitQueueEmpty(20 * time.Second)
	box := mailbox(n.Maildir, "bob@example.test")
	if len(box) != 1 || !strings.Contains(box[0], "Subject: after 503") {
		t.Errorf("bob's mailbox holds %d messages, want only the one sent after a 503", len(box))
	}
	if got := mailbox(n.Maildir, "d@example.test"); len(got) != 0 {
		t.Errorf("the recipient refused with 452 got mail")
	}
	if got := mailbox(n.Maildir, "loop@example.test"); len(got) != 0 {
		t.Errorf("a looping message refused with 554 was delivered")
	}
}

// TestE2ESubmissionAuth: the submission port offers AUTH only after STARTTLS, refuses mail
// from unauthenticated clients, and relays for a user who logged in over TLS (swaks -tls -a).
func TestE2ESubmissionAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, nodeOptions{Users: map[string]string{"alice": string(hash)}})

	t.Run("no AUTH before STARTTLS", func(t *testing.T) {
		got := pythonSMTP(t, n.Submission,
			step("ehlo"), step("features"),
			step("docmd", "AUTH PLAIN AGFsaWNlAHMzY3JldC1wdw=="), // \0alice\0s3cret-pw
			step("mail", "alice@example.test"))
		if strings.Contains(" "+got[1].Text+" ", " auth ") {
			t.Errorf("AUTH advertised before STARTTLS: %q", got[1].Text)
		}
		if !strings.Contains(" "+got[1].Text+" ", " starttls ") {
			t.Errorf("STARTTLS not advertised on submission: %q", got[1].Text)
		}
		if got[2].Code < 500 || got[2].Code > 599 {
			t.Errorf("AUTH before TLS: got %v, want a 5xx refusal", got[2])
		}
		if got[3].Code < 500 || got[3].Code > 599 {
			t.Errorf("MAIL without AUTH on submission: got %v, want a 5xx refusal", got[3])
		}
	})

	t.Run("swaks AUTH without TLS refused", func(t *testing.T) {
		out, code := swaks(t, "--server", n.Submission, "--from", "alice@example.test", "--to", "bob@example.test",
			"-a", "PLAIN", "-au", "alice", "-ap", "s3cret-pw")
		if code == 0 || strings.Contains(out, "235 ") {
			t.Errorf("AUTH over plaintext succeeded (exit %d):\n%s", code, out)
		}
	})

	t.Run("swaks STARTTLS then AUTH PLAIN", func(t *testing.T) {
		subject := uniq(t)
		out, code := swaks(t, "--server", n.Submission, "-tls", "-a", "PLAIN", "-au", "alice", "-ap", "s3cret-pw",
			"--from", "alice@example.test", "--to", "bob@example.test", "--header", "Subject: "+subject)
		if code != 0 || !strings.Contains(out, "<~  235") {
			t.Fatalf("authenticated submission failed (exit %d):\n%s", code, out)
		}
		waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+subject)
	})

	t.Run("swaks STARTTLS then AUTH LOGIN with a wrong password", func(t *testing.T) {
		out, code := swaks(t, "--server", n.Submission, "-tls", "-a", "LOGIN", "-au", "alice", "-ap", "wrong",
			"--from", "alice@example.test", "--to", "bob@example.test")
		if code == 0 || !strings.Contains(out, "535") {
			t.Errorf("wrong password: exit %d, want 535:\n%s", code, out)
		}
	})

	t.Run("smtplib STARTTLS then login", func(t *testing.T) {
		got := pythonSMTP(t, n.Submission, step("ehlo"), step("starttls"), step("ehlo"), step("features"),
			step("login", "alice", "s3cret-pw"), step("mail", "alice@example.test"), step("rcpt", "someone@elsewhere.test"))
		if !strings.Contains(" "+got[3].Text+" ", " auth ") {
			t.Errorf("AUTH not advertised after STARTTLS: %q", got[3].Text)
		}
		if got[4].Code != 235 {
			t.Errorf("login: %v, want 235", got[4])
		}
		if got[6].Code != 250 {
			t.Errorf("authenticated relay RCPT: %v, want 250", got[6])
		}
	})
}
