package node

import (
	"crypto/tls"
	"io"
	"net/smtp"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/meshd/meshd/node/config"
)

func TestMeshPeerIDDedupAndStrip(t *testing.T) {
	cfg := testConfig(t)
	cfg.Relay.MeshPeers = []string{"127.0.0.1"}
	peer := startNode(t, cfg, Options{})
	msg := "X-Meshd-ID: meshid-0001\r\nX-Meshd-Trace: rg7\r\nSubject: hop\r\n\r\nbody\r\n"
	mustSend(t, peer.SMTPAddr(), "a@far.test", []string{"bob@example.test"}, msg)
	mustSend(t, peer.SMTPAddr(), "a@far.test", []string{"bob@example.test"}, msg) // resend after a "crash": duplicate
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(mailbox(t, peer.cfg, "bob@example.test")) == 1 })
	waitFor(t, 5*time.Second, "queue empty", func() bool { return peer.Queue().Stats().Messages == 0 })
	if got := len(mailbox(t, peer.cfg, "bob@example.test")); got != 1 {
		t.Errorf("mesh resend delivered %d times, want 1", got)
	}
	// One re-entry is a reroute after a topology change; a third entry
	// into our routing group is a loop.
	reentry := "X-Meshd-ID: meshid-0003\r\nX-Meshd-Trace: rg1, rg9\r\nSubject: rerouted\r\n\r\nbody\r\n"
	if err := send(peer.SMTPAddr(), "a@far.test", []string{"bob@example.test"}, reentry); err != nil {
		t.Errorf("one re-entry refused: %v", err)
	}
	loop := "X-Meshd-ID: meshid-0002\r\nX-Meshd-Trace: rg1, rg9, rg1\r\nSubject: loop\r\n\r\nbody\r\n"
	if got := replyCode(send(peer.SMTPAddr(), "a@far.test", []string{"bob@example.test"}, loop)); got != "554 5.4.6" {
		t.Errorf("trace through our RG twice: got %q, want 554 5.4.6", got)
	}

	// From a non-peer the headers are removed and not believed.
	cfg2 := testConfig(t)
	other := startNode(t, cfg2, Options{})
	mustSend(t, other.SMTPAddr(), "a@far.test", []string{"bob@example.test"}, msg)
	mustSend(t, other.SMTPAddr(), "a@far.test", []string{"bob@example.test"}, msg)
	waitFor(t, 5*time.Second, "both copies", func() bool { return len(mailbox(t, other.cfg, "bob@example.test")) == 2 })
	for _, m := range mailbox(t, other.cfg, "bob@example.test") {
		if strings.Contains(m, "meshid-0001") || strings.Contains(m, "X-Meshd-Trace") {
			t.Errorf("mesh headers from a non-peer kept:\n%s", m)
		}
	}
}

func TestSubmissionAuthRelays(t *testing.T) {
	remote := startRemote(t, nil)
	cfg := testConfig(t)
	cfg.Outbound.Smarthost = remote.addr.String()
	cfg.Auth.Users = []config.User{{Name: "alice", Hash: bcryptHashForTest(t, "s3cret")}}
	n := startNode(t, cfg, Options{})

	submit := func(pass string) error {
		c, err := smtp.Dial(n.SubmissionAddr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.Hello("client.test"); err != nil {
			return err
		}
		if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
			return err
		}
		if err := c.Auth(smtp.PlainAuth("", "alice", pass, "127.0.0.1")); err != nil {
			return err
		}
		if err := c.Mail("alice@example.test"); err != nil {
			return err
		}
		if err := c.Rcpt("friend@far.test"); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		io.WriteString(w, message("submitted"))
		if err := w.Close(); err != nil {
			return err
		}
		return c.Quit()
	}
	if err := submit("wrong"); err == nil || !strings.HasPrefix(replyCode(err), "535") {
		t.Errorf("bad password: %v, want 535", err)
	}
	if err := submit("s3cret"); err != nil {
		t.Fatalf("authenticated submission: %v", err)
	}
	waitFor(t, 5*time.Second, "relayed submission", func() bool { return len(remote.received()) == 1 })
	msgs := remote.received()
	if !strings.Contains(msgs[0].Body, "Subject: submitted") {
		t.Errorf("smarthost got %q", msgs[0].Body)
	}
}

// sendNotify sends one message with a NOTIFY parameter per recipient, using
// go-smtp's client (net/smtp cannot send RCPT parameters).
func sendNotify(t *testing.T, addr, from string, rcpts map[string][]gosmtp.DSNNotify, body string) {
	t.Helper()
	c, err := gosmtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		t.Fatal(err)
	}
	for r, n := range rcpts {
		if err := c.Rcpt(r, &gosmtp.RcptOptions{Notify: n}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, body)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Quit()
}

func TestNotifyParameters(t *testing.T) {
	remote := startRemote(t, func(rcpt string, _ int) error {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	})
	cfg := testConfig(t)
	cfg.Outbound.Smarthost = remote.addr.String()
	cfg.Relay.AllowNetworks = []string{"127.0.0.1"}
	n := startNode(t, cfg, Options{})
	sendNotify(t, n.SMTPAddr().String(), "alice@example.test", map[string][]gosmtp.DSNNotify{
		"bob@example.test":   {gosmtp.DSNNotifySuccess}, // delivered here: success DSN
		"gone@far.test":      {gosmtp.DSNNotifyNever},   // bounces, but no DSN wanted
		"missing@far.test":   {gosmtp.DSNNotifyFailure}, // bounces: failure DSN
		"carol@example.test": nil,                       // delivered, default NOTIFY: nothing
	}, message("notify"))
	waitFor(t, 10*time.Second, "queue empty", func() bool { return n.Queue().Stats().Messages == 0 })
	dsns := mailbox(t, n.cfg, "alice@example.test")
	var success, failure int
	for _, d := range dsns {
		switch {
		case strings.Contains(d, "Action: delivered") && strings.Contains(d, "bob@example.test"):
			success++
		case strings.Contains(d, "Action: failed") && strings.Contains(d, "missing@far.test"):
			failure++
			if strings.Contains(d, "gone@far.test") {
				t.Errorf("DSN reports gone@far.test despite NOTIFY=NEVER:\n%s", d)
			}
		default:
			t.Errorf("unexpected DSN:\n%s", d)
		}
	}
	if success != 1 || failure != 1 {
		t.Errorf("got %d success and %d failure DSNs, want 1 and 1", success, failure)
	}
}

// TestRelayedDSN: a recipient with NOTIFY=SUCCESS handed to a smarthost
// without DSN gets a "relayed" notification (RFC 3461 §4.2); one handed to
// a smarthost with DSN gets none from us (the request travels on), and a
// recipient without NOTIFY=SUCCESS never gets one.
func TestRelayedDSN(t *testing.T) {
	for _, tc := range []struct {
		name      string
		remoteDSN bool
		want      int
	}{{"next hop without DSN", false, 1}, {"next hop with DSN", true, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			remote := startRemoteWith(t, func(string, int) error { return nil }, func(s *gosmtp.Server) { s.EnableDSN = tc.remoteDSN })
			cfg := testConfig(t)
			cfg.Outbound.Smarthost = remote.addr.String()
			cfg.Relay.AllowNetworks = []string{"127.0.0.1"}
			n := startNode(t, cfg, Options{})
			sendNotify(t, n.SMTPAddr().String(), "alice@example.test", map[string][]gosmtp.DSNNotify{
				"one@far.test":   {gosmtp.DSNNotifySuccess},
				"two@far.test":   {gosmtp.DSNNotifySuccess, gosmtp.DSNNotifyFailure},
				"three@far.test": nil,
			}, message("relayed"))
			waitFor(t, 10*time.Second, "queue empty", func() bool { return n.Queue().Stats().Messages == 0 })
			if got := len(remote.received()); got != 1 {
				t.Fatalf("smarthost got %d messages, want 1", got)
			}
			dsns := mailbox(t, n.cfg, "alice@example.test")
			if len(dsns) != tc.want {
				t.Fatalf("%d DSNs to the sender, want %d:\n%s", len(dsns), tc.want, strings.Join(dsns, "\n----\n"))
			}
			for _, d := range dsns {
				for _, want := range []string{"Subject: Relayed:", "Final-Recipient: rfc822; one@far.test", "Final-Recipient: rfc822; two@far.test",
					"Action: relayed", "Status: 2.0.0", "Remote-MTA: dns; [127.0.0.1]"} {
					if !strings.Contains(d, want) {
						t.Errorf("DSN lacks %q:\n%s", want, d)
					}
				}
				if strings.Contains(d, "three@far.test") {
					t.Errorf("DSN reports three@far.test, which did not ask for SUCCESS:\n%s", d)
				}
			}
		})
	}
}
