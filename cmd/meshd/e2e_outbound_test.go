package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
)

// outboundDNS serves the external domains of these tests:
//
//	ext.test       MX 10 mx.ext.test (127.0.0.1)
//	implicit.test  no MX, A 127.0.0.1 (RFC 5321 §5.1 implicit MX)
//	null.test      MX 0 . (RFC 7505 null MX) and an A record a wrong resolver would fall back to
//	everything else under .test: NXDOMAIN
func outboundDNS(t *testing.T) *extern.DNSMasq {
	return extern.StartDNSMasq(t,
		extern.Local("test"),
		extern.MX("ext.test", "mx.ext.test", 10),
		extern.Host("mx.ext.test", "127.0.0.1"),
		extern.Host("implicit.test", "127.0.0.1"),
		extern.NullMX("null.test"),
		extern.Host("null.test", "127.0.0.1"),
	)
}

// relayNode is a node that relays for loopback clients, resolves MX with dns and connects to
// MX hosts on mxPort.
func relayNode(t *testing.T, dns *extern.DNSMasq, mxPort int, extra map[string]any) *meshNode {
	return startNode(t, nodeOptions{
		AllowNetworks: []string{"127.0.0.0/8"},
		DNSServer:     dns.Addr,
		MXPort:        mxPort,
		Extra:         extra,
	})
}

// TestE2EDeliveryByMX: dnsmasq publishes the MX, smtp-sink is the MX host; swaks sends.
// Also covers the implicit MX (A record only).
func TestE2EDeliveryByMX(t *testing.T) {
	dns := outboundDNS(t)
	mx := startSink(t, 0)
	n := relayNode(t, dns, mx.Port, nil)

	cases := []struct{ name, rcpt string }{
		{"MX record", "user@ext.test"},
		{"implicit MX", "user@implicit.test"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			subject := uniq(t)
			out, code := swaks(t, "--server", n.SMTP, "--from", "sender@example.test", "--to", tc.rcpt,
				"--header", "Subject: "+subject)
			if code != 0 {
				t.Fatalf("swaks exit %d:\n%s", code, out)
			}
			msg, ok := mx.waitMessage(20*time.Second, "Subject: "+subject)
			if !ok {
				t.Fatalf("smtp-sink did not receive %q; dnsmasq log:\n%s", subject, dns.Output())
			}
			if !strings.Contains(msg, "X-Rcpt-Args: <"+tc.rcpt+">") || !strings.Contains(msg, "X-Mail-Args: <sender@example.test>") {
				t.Errorf("wrong envelope at the MX:\n%s", msg)
			}
			if strings.Count(msg, "Received:") < 2 {
				t.Errorf("meshd added no Received: header:\n%s", msg)
			}
		})
	}
	n.waitQueueEmpty(20 * time.Second)
	if got := len(mx.Messages()); got != len(cases) {
		t.Errorf("smtp-sink holds %d messages, want %d", got, len(cases))
	}
}

// TestE2ESmarthost: every external domain goes to the smarthost; DNS is not asked (the
// configured resolver is a dead port, and the domain exists nowhere).
func TestE2ESmarthost(t *testing.T) {
	smart := startSink(t, 0)
	n := startNode(t, nodeOptions{AllowNetworks: []string{"127.0.0.0/8"}, Smarthost: smart.Addr})
	subject := uniq(t)
	msg := "From: sender@example.test\r\nTo: x@nowhere.invalid\r\nSubject: " + subject + "\r\n\r\nvia smarthost\r\n"
	r := pythonSMTP(t, n.SMTP, step("sendmail", "sender@example.test", []string{"x@nowhere.invalid", "y@other.invalid"}, msg))
	if r[0].Code != 250 || r[0].Text != "{}" {
		t.Fatalf("sendmail: %v", r[0])
	}
	got, ok := smart.waitMessage(20*time.Second, "Subject: "+subject, "via smarthost")
	if !ok {
		t.Fatalf("smarthost did not receive %q", subject)
	}
	n.waitQueueEmpty(20 * time.Second)
	rcpts := strings.Count(strings.Join(smart.Messages(), "\n"), "X-Rcpt-Args:")
	if rcpts != 2 {
		t.Errorf("smarthost saw %d recipients, want 2:\n%s", rcpts, got)
	}
}

// TestE2ETempFailThenRetry: the MX answers RCPT with 451; meshd keeps the message and, once
// the MX accepts again (a new smtp-sink on the same port), delivers it exactly once.
func TestE2ETempFailThenRetry(t *testing.T) {
	dns := outboundDNS(t)
	port := extern.FreePort(t)
	failing := startSink(t, port, "-v", "-r", "rcpt", "-b", "451 4.3.2 try again later")
	n := relayNode(t, dns, port, map[string]any{"outbound": map[string]any{"dead_time": "200ms"}})

	subject := uniq(t)
	out, code := swaks(t, "--server", n.SMTP, "--from", "sender@example.test", "--to", "user@ext.test",
		"--header", "Subject: "+subject)
	if code != 0 {
		t.Fatalf("swaks exit %d:\n%s", code, out)
	}
	// Two refused attempts prove that meshd retries after a 4xx.
	if !testkit.Poll(30*time.Second, func() bool {
		return strings.Count(failing.output(), "RCPT TO:<user@ext.test>") >= 2
	}) {
		t.Fatalf("meshd did not retry after 451; smtp-sink saw:\n%s", failing.output())
	}
	if k, err := n.queueLen(); err != nil || k != 1 {
		t.Errorf("while the MX refuses: queue holds %d messages (err %v), want 1", k, err)
	}
	failing.Stop()
	for _, m := range failing.Messages() {
		// smtp-sink dumps aborted transactions too (at RSET); none may hold the message.
		if strings.Contains(m, "Subject: "+subject) {
			t.Fatalf("the refusing smtp-sink received the message content:\n%s", m)
		}
	}

	ok := startSink(t, port)
	if _, got := ok.waitMessage(30*time.Second, "Subject: "+subject); !got {
		t.Fatalf("message not delivered after the MX recovered")
	}
	n.waitQueueEmpty(20 * time.Second)
	if got := len(ok.Messages()); got != 1 {
		t.Errorf("the MX received %d copies, want 1", got)
	}
}

// TestE2EPermanentFailureDSN: the MX answers RCPT with 550; the local sender gets an RFC 3464
// failure report in its Maildir. A message from the null sender <> gets no report at all.
func TestE2EPermanentFailureDSN(t *testing.T) {
	dns := outboundDNS(t)
	mx := startSink(t, 0, "-f", "rcpt", "-B", "550 5.1.1 no such user here")
	n := relayNode(t, dns, mx.Port, nil)

	subject := uniq(t)
	out, code := swaks(t, "--server", n.SMTP, "--from", "alice@example.test", "--to", "nobody@ext.test",
		"--header", "Subject: "+subject)
	if code != 0 {
		t.Fatalf("swaks exit %d:\n%s", code, out)
	}
	dsn := waitMailbox(t, n.Maildir, "alice@example.test", 30*time.Second, "nobody@ext.test")
	checkFailureDSN(t, dsn, "nobody@ext.test", "5.1.1")
	if !strings.Contains(dsn, subject) {
		t.Errorf("DSN does not carry the original message's headers (Subject %q):\n%s", subject, dsn)
	}
	n.waitQueueEmpty(20 * time.Second)

	// Never a DSN to <>: the bounce of a bounce is dropped.
	before := countFiles(t, n.Maildir)
	out, code = swaks(t, "--server", n.SMTP, "--from", "<>", "--to", "nobody@ext.test", "--header", "Subject: null sender")
	if code != 0 {
		t.Fatalf("swaks with MAIL FROM:<> exit %d:\n%s", code, out)
	}
	n.waitQueueEmpty(30 * time.Second)
	if after := countFiles(t, n.Maildir); after != before {
		t.Errorf("a message from <> that failed produced mail: %d files in the Maildir tree, were %d", after, before)
	}
}

// TestE2ENullMX: a domain publishing "MX 0 ." (RFC 7505) fails at once, with a DSN, and meshd
// does not fall back to its A record.
func TestE2ENullMX(t *testing.T) {
	dns := outboundDNS(t)
	mx := startSink(t, 0) // null.test's A record points here: it must stay empty
	n := relayNode(t, dns, mx.Port, nil)

	subject := uniq(t)
	msg := "From: alice@example.test\r\nTo: bob@null.test\r\nSubject: " + subject + "\r\n\r\nto a null MX\r\n"
	r := pythonSMTP(t, n.SMTP, step("sendmail", "alice@example.test", []string{"bob@null.test"}, msg))
	if r[0].Code != 250 {
		t.Fatalf("sendmail: %v", r[0])
	}
	dsn := waitMailbox(t, n.Maildir, "alice@example.test", 30*time.Second, "bob@null.test")
	checkFailureDSN(t, dsn, "bob@null.test", "5.")
	n.waitQueueEmpty(20 * time.Second)
	if got := len(mx.Messages()); got != 0 {
		t.Errorf("mail for a null-MX domain was delivered to its A record (%d messages)", got)
	}
}

// checkFailureDSN checks the parts of an RFC 3464 failure report a sender's MUA relies on.
func checkFailureDSN(t *testing.T, dsn, rcpt, statusPrefix string) {
	t.Helper()
	lower := strings.ToLower(dsn)
	var missing []string
	for _, want := range []string{
		"content-type: multipart/report",
		"report-type=delivery-status",
		"message/delivery-status",
		"action: failed",
		"final-recipient: rfc822;",
		"status: " + statusPrefix,
		strings.ToLower(rcpt),
	} {
		if !strings.Contains(lower, want) {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		t.Errorf("the failure DSN is not an RFC 3464 report: it lacks %q:\n%s", missing, dsn)
	}
}

// countFiles counts regular files under root.
func countFiles(t *testing.T, root string) int {
	t.Helper()
	k := 0
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			k++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}
