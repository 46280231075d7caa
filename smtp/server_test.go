package smtp

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	netsmtp "net/smtp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

type step struct {
	send string // line to send; "" to only read a reply
	raw  string // bytes to write as is (DATA content); replaces send
	want string // expected reply prefix; "" = expect nothing
}

func runSteps(t *testing.T, w *wire, steps []step) {
	t.Helper()
	for i, s := range steps {
		switch {
		case s.raw != "":
			w.raw(s.raw)
		case s.send != "":
			w.send(s.send)
		}
		if s.want == "" {
			continue
		}
		if r := w.reply(); !strings.HasPrefix(r, s.want) {
			t.Fatalf("step %d (%q): reply %q, want prefix %q", i, s.send+s.raw, r, s.want)
		}
	}
}

func pad(name string, n int) string {
	return name + ": " + strings.Repeat("x", n) + "\r\n"
}

func receivedLines(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "Received: from hop%d.test\r\n\tby hop%d.test; Wed, 25 Nov 2026 12:00:00 +0000\r\n", i, i+1)
	}
	return b.String()
}

func TestServerTranscripts(t *testing.T) {
	hello := []step{{want: "220 mx.meshd.test ESMTP"}, {send: "EHLO client.test", want: "250 "}}
	envelope := append(append([]step{}, hello...),
		step{send: "MAIL FROM:<a@example.test>", want: "250 2.0.0"},
		step{send: "RCPT TO:<b@example.test>", want: "250 2.0.0"})
	with := func(base []step, more ...step) []step { return append(append([]step{}, base...), more...) }

	tests := []struct {
		name   string
		limits Limits
		steps  []step
		closed bool // the server must close the connection afterwards
		stored int  // messages the sink must hold
	}{
		{name: "accept", stored: 1, steps: with(envelope,
			step{send: "DATA", want: "354"},
			step{raw: msg("hi") + ".\r\n", want: "250 2.0.0 OK queued as "})},
		{name: "dot stuffing and RSET between messages", stored: 2, steps: with(envelope,
			step{send: "DATA", want: "354"},
			step{raw: msg("one") + "..leading dot\r\n.\r\n", want: "250 2.0.0"},
			step{send: "RSET", want: "250 2.0.0"},
			step{send: "MAIL FROM:<>", want: "250"},
			step{send: "RCPT TO:<c@example.test>", want: "250"},
			step{send: "DATA", want: "354"},
			step{raw: msg("two") + ".\r\n", want: "250 2.0.0"})},
		{name: "SIZE parameter over limit", limits: Limits{MaxMessageBytes: 1000}, steps: with(hello,
			step{send: "MAIL FROM:<a@example.test> SIZE=1001", want: "552 5.3.4"},
			step{send: "MAIL FROM:<a@example.test> SIZE=1000", want: "250"})},
		{name: "message over size limit", limits: Limits{MaxMessageBytes: 1000}, steps: with(envelope,
			step{send: "DATA", want: "354"},
			step{raw: msg("big", pad("X-Pad", 990)) + ".\r\n", want: "552 5.3.4"},
			step{send: "NOOP", want: "250"})},
		{name: "BDAT over size limit", limits: Limits{MaxMessageBytes: 100}, steps: with(envelope,
			step{raw: "BDAT 101 LAST\r\n" + strings.Repeat("y", 101), want: "552 5.3.4"},
			step{send: "NOOP", want: "250"})},
		{name: "too many recipients", limits: Limits{MaxRecipients: 2}, stored: 1, steps: with(envelope,
			step{send: "RCPT TO:<c@example.test>", want: "250"},
			step{send: "RCPT TO:<d@example.test>", want: "452 4.5.3"},
			step{send: "DATA", want: "354"},
			step{raw: msg("two rcpts") + ".\r\n", want: "250"})},
		{name: "header too large", limits: Limits{MaxHeaderBytes: 600}, steps: with(envelope,
			step{send: "DATA", want: "354"},
			step{raw: msg("hdr", pad("X-Pad", 600)) + ".\r\n", want: "552 5.6.0"})},
		{name: "large body small header", limits: Limits{MaxHeaderBytes: 600}, stored: 1, steps: with(envelope,
			step{send: "DATA", want: "354"},
			step{raw: msg("body") + strings.Repeat("body line\r\n", 200) + ".\r\n", want: "250"})},
		{name: "Received at limit", limits: Limits{MaxReceived: 3}, stored: 1, steps: with(envelope,
			step{send: "DATA", want: "354"},
			step{raw: msg("loop", receivedLines(3)) + ".\r\n", want: "250"})},
		{name: "too many Received", limits: Limits{MaxReceived: 3}, steps: with(envelope,
			step{send: "DATA", want: "354"},
			step{raw: msg("loop", receivedLines(4)) + ".\r\n", want: "554 5.4.6"})},
		{name: "relay denied", steps: with(hello,
			step{send: "MAIL FROM:<a@example.test>", want: "250"},
			step{send: "RCPT TO:<outside@remote.test>", want: "550 5.7.1 Relay access denied"},
			step{send: "DATA", want: "503 5.5.1 Missing RCPT TO command."})},
		{name: "policy failure is temporary", steps: with(hello,
			step{send: "MAIL FROM:<a@example.test>", want: "250"},
			step{send: "RCPT TO:<broken@remote.test>", want: "451 4.3.0"})},
		// Sequence errors are 503 5.5.1 (RFC 5321 §4.3.2); go-smtp's 502s
		// are renumbered by dialogConn (more cases in dialog_test.go).
		{name: "MAIL before EHLO", steps: []step{{want: "220"}, {send: "MAIL FROM:<a@example.test>", want: "503 5.5.1"}}},
		{name: "RCPT before MAIL", steps: with(hello, step{send: "RCPT TO:<b@example.test>", want: "503 5.5.1"})},
		{name: "DATA before RCPT", steps: with(hello,
			step{send: "MAIL FROM:<a@example.test>", want: "250"},
			step{send: "DATA", want: "503 5.5.1"})},
		{name: "BDAT before MAIL", steps: with(hello, step{raw: "BDAT 3 LAST\r\nabc", want: "503 5.5.1"},
			step{send: "NOOP", want: "250"})},
		{name: "unknown command", steps: with(hello, step{send: "FROB", want: "500 5.5.2"})},
		{name: "command line too long", limits: Limits{MaxLineLength: 600}, closed: true, steps: with(hello,
			step{send: "NOOP " + strings.Repeat("x", 700), want: "500 5.4.0"})},
		{name: "DATA line too long", limits: Limits{MaxLineLength: 600}, closed: true, steps: with(envelope,
			step{send: "DATA", want: "354"},
			step{raw: "Subject: x\r\n\r\n" + strings.Repeat("z", 700) + "\r\n.\r\n", want: "500 5.5.2 Line too long"})},
		{name: "BDAT chunks", stored: 1, steps: with(envelope,
			step{raw: "BDAT 12\r\nSubject: x\r\n", want: "250 2.0.0 Continue"},
			step{raw: "BDAT 7 LAST\r\n\r\nbody\r\n", want: "250 2.0.0 OK queued as "})},
		{name: "pipelined MAIL RCPT DATA", stored: 1, steps: with(hello,
			step{raw: "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<outside@remote.test>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n",
				want: "250"}, step{want: "250"}, step{want: "550 5.7.1"}, step{want: "250"}, step{want: "354"},
			step{raw: msg("pipe") + ".\r\nQUIT\r\n", want: "250 2.0.0"}, step{want: "221"})},
		// Not implemented on this listener: 502 stays.
		{name: "STARTTLS not configured", steps: with(hello, step{send: "STARTTLS", want: "502 5.5.1 TLS not supported"})},
		{name: "AUTH not offered on relay listener", steps: with(hello, step{send: "AUTH PLAIN AGFsaWNlAHNlY3JldA==", want: "502 5.7.0"})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{}
			srv := startServer(t, sink, func(c *ServerConfig) { c.Limits = tc.limits })
			w := dialWire(t, srv.Addr().String())
			runSteps(t, w, tc.steps)
			if tc.closed {
				w.expectClosed()
			}
			if got := len(sink.messages()); got != tc.stored {
				t.Fatalf("sink holds %d messages, want %d", got, tc.stored)
			}
		})
	}
}

func TestServerEHLOCapabilities(t *testing.T) {
	certs := newTestCerts(t)
	srv := startServer(t, &fakeSink{}, func(c *ServerConfig) {
		c.TLS = certs.server
		c.Limits.MaxMessageBytes = 12345
	})
	w := dialWire(t, srv.Addr().String())
	w.expect("220 mx.meshd.test ESMTP")
	caps := strings.Split(w.cmd("EHLO client.test", "250 "), "\n")
	for _, want := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS", "SMTPUTF8", "DSN", "SIZE 12345"} {
		found := false
		for _, c := range caps {
			found = found || c == want
		}
		if !found {
			t.Errorf("EHLO lacks %q: %q", want, caps)
		}
	}
	for _, c := range caps {
		if strings.HasPrefix(c, "AUTH") {
			t.Errorf("relay listener offers %q", c)
		}
	}
	w.cmd("HELO client.test", "250 2.0.0 Hello client.test")
}

func TestServerEnvelopeAndReceived(t *testing.T) {
	sink := &fakeSink{}
	srv := startServer(t, sink, nil)
	w := dialWire(t, srv.Addr().String())
	runSteps(t, w, []step{
		{want: "220"}, {send: "EHLO client.test", want: "250"},
		{send: "MAIL FROM:<a@example.test> RET=HDRS ENVID=env+2Bid BODY=8BITMIME SMTPUTF8", want: "250"},
		{send: "RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig+2Bb@example.test", want: "250"},
		{send: "DATA", want: "354"},
		{raw: msg("env") + ".\r\n", want: "250"},
	})
	msgs := sink.messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	m := msgs[0]
	want := Envelope{From: "a@example.test", Ret: "HDRS", EnvID: "env+id", SMTPUTF8: true, EightBit: true,
		Rcpts: []Rcpt{{Addr: "b@example.test", Notify: []string{"SUCCESS", "FAILURE"}, ORcpt: "rfc822;orig+b@example.test"}}}
	if fmt.Sprint(m.env) != fmt.Sprint(want) {
		t.Errorf("envelope\n got %+v\nwant %+v", m.env, want)
	}
	if len(m.sess.ID) != 26 {
		t.Errorf("session ID %q is not 26 characters", m.sess.ID)
	}
	wantHdr := "Received: from client.test ([127.0.0.1])\r\n" +
		"\tby mx.meshd.test with UTF8SMTP id " + m.sess.ID + "\r\n" +
		"\tfor <b@example.test>; Wed, 25 Nov 2026 13:10:00 +0000\r\n"
	if !strings.HasPrefix(string(m.body), wantHdr+msg("env")) {
		t.Errorf("body\n%q\nwant\n%q", m.body, wantHdr+msg("env"))
	}
	if m.sess.Helo != "client.test" || m.sess.TLS || m.sess.AuthUser != "" {
		t.Errorf("session %+v", m.sess)
	}
}

func TestServerSinkReplies(t *testing.T) {
	tests := []struct {
		name string
		sink Sink
		want string
	}{
		{"accepted", &fakeSink{}, "250 2.0.0 OK queued as "},
		{"queue id", &idSink{}, "250 2.0.0 OK queued as q-12345678"},
		{"smtp error as is", &fakeSink{err: &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "rejected by content filter"}},
			"554 5.7.0 rejected by content filter"},
		{"wrapped smtp error", &fakeSink{err: fmt.Errorf("node: %w", &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 3, 1}, Message: "queue full"})},
			"452 4.3.1 queue full"},
		{"other error", &fakeSink{err: errBoom}, "451 4.3.0 Temporary local problem"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, tc.sink, nil)
			w := dialWire(t, srv.Addr().String())
			runSteps(t, w, []step{{want: "220"}, {send: "EHLO c.test", want: "250"},
				{send: "MAIL FROM:<a@example.test>", want: "250"}, {send: "RCPT TO:<b@example.test>", want: "250"},
				{send: "DATA", want: "354"}, {raw: msg("x") + ".\r\n", want: tc.want}})
			if r := w.cmd("NOOP", "250"); r == "" {
				t.Fatal("session unusable after sink reply")
			}
		})
	}
}

func TestServerNetSMTPClient(t *testing.T) {
	sink := &fakeSink{}
	srv := startServer(t, sink, nil)
	body := msg("via net/smtp")
	if err := netsmtp.SendMail(srv.Addr().String(), nil, "a@example.test", []string{"b@example.test", "c@example.test"}, []byte(body)); err != nil {
		t.Fatal(err)
	}
	msgs := sink.messages()
	if len(msgs) != 1 || len(msgs[0].env.Rcpts) != 2 {
		t.Fatalf("messages: %+v", msgs)
	}
	if b := string(msgs[0].body); !strings.HasSuffix(b, body) || strings.Contains(b, "\tfor <") {
		t.Errorf("body %q: want original at the end and no 'for' clause with 2 rcpts", b)
	}
}

func submissionServer(t *testing.T, sink Sink) (*Server, testCerts) {
	certs := newTestCerts(t)
	srv := startServer(t, sink, func(c *ServerConfig) {
		c.Submission = true
		c.TLS = certs.server
		c.Auth = fakeAuth{"alice": "secret"}
	})
	return srv, certs
}

func TestSubmissionBeforeTLS(t *testing.T) {
	srv, _ := submissionServer(t, &fakeSink{})
	w := dialWire(t, srv.Addr().String())
	w.expect("220")
	caps := w.cmd("EHLO client.test", "250")
	if strings.Contains(caps, "AUTH") || !strings.Contains(caps, "STARTTLS") {
		t.Fatalf("EHLO before TLS: %q", caps)
	}
	// RFC 4954 §6: 538 5.7.11, the mechanism needs an encrypted channel.
	w.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret")), "538 5.7.11")
	w.cmd("AUTH LOGIN", "538 5.7.11")
	w.cmd("MAIL FROM:<alice@example.test>", "530 5.7.0 Must issue a STARTTLS command first")
}

func TestSubmissionAfterTLS(t *testing.T) {
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret"))
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name  string
		steps []step
		ok    bool
	}{
		{"PLAIN with initial response", []step{{send: "AUTH PLAIN " + plain, want: "235 2.0.0"}}, true},
		{"PLAIN without initial response", []step{{send: "AUTH PLAIN", want: "334"}, {send: plain, want: "235"}}, true},
		{"PLAIN wrong password", []step{{send: "AUTH PLAIN " + b64("\x00alice\x00nope"), want: "535 5.7.8"}}, false},
		{"PLAIN other authorization identity", []step{{send: "AUTH PLAIN " + b64("bob\x00alice\x00secret"), want: "535 5.7.8"}}, false},
		{"LOGIN", []step{{send: "AUTH LOGIN", want: "334 " + b64("Username:")}, {send: b64("alice"), want: "334 " + b64("Password:")},
			{send: b64("secret"), want: "235 2.0.0"}}, true},
		{"LOGIN with initial response", []step{{send: "AUTH LOGIN " + b64("alice"), want: "334 " + b64("Password:")},
			{send: b64("secret"), want: "235"}}, true},
		{"LOGIN wrong password", []step{{send: "AUTH LOGIN", want: "334"}, {send: b64("alice"), want: "334"},
			{send: b64("bad"), want: "535 5.7.8"}}, false},
		{"LOGIN cancelled", []step{{send: "AUTH LOGIN", want: "334"}, {send: "*", want: "501"}}, false},
		{"unknown mechanism", []step{{send: "AUTH CRAM-MD5", want: "504 5.7.4"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{}
			srv, certs := submissionServer(t, sink)
			w := dialWire(t, srv.Addr().String())
			w.expect("220")
			w.cmd("EHLO client.test", "250")
			w.cmd("STARTTLS", "220")
			w.upgradeTLS(&tls.Config{RootCAs: certs.roots, ServerName: "localhost"})
			caps := w.cmd("EHLO client.test", "250")
			if !strings.Contains(caps, "AUTH PLAIN LOGIN") || strings.Contains(caps, "STARTTLS") {
				t.Fatalf("EHLO after TLS: %q", caps)
			}
			w.cmd("MAIL FROM:<alice@example.test>", "530 5.7.0 Authentication required")
			runSteps(t, w, tc.steps)
			if !tc.ok {
				w.cmd("MAIL FROM:<alice@example.test>", "530 5.7.0")
				return
			}
			w.cmd("AUTH PLAIN "+plain, "503 5.5.1") // already authenticated
			runSteps(t, w, []step{{send: "MAIL FROM:<alice@example.test>", want: "250"},
				{send: "RCPT TO:<x@remote.test>", want: "250"}, {send: "DATA", want: "354"},
				{raw: msg("sub") + ".\r\n", want: "250"}})
			m := sink.messages()
			if len(m) != 1 || m[0].sess.AuthUser != "alice" || !m[0].sess.TLS {
				t.Fatalf("messages %+v", m)
			}
			if !strings.Contains(string(m[0].body), " with ESMTPSA id ") {
				t.Errorf("Received lacks ESMTPSA: %q", m[0].body)
			}
		})
	}
}

func TestSubmissionAuthFailureLimit(t *testing.T) {
	srv, certs := submissionServer(t, &fakeSink{})
	w := dialWire(t, srv.Addr().String())
	w.expect("220")
	w.cmd("EHLO client.test", "250")
	w.cmd("STARTTLS", "220")
	w.upgradeTLS(&tls.Config{RootCAs: certs.roots, ServerName: "localhost"})
	w.cmd("EHLO client.test", "250")
	bad := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00guess"))
	w.cmd(bad, "535 5.7.8")
	w.cmd(bad, "535 5.7.8")
	w.cmd(bad, "421 4.7.0 Too many authentication failures")
	w.expectClosed()
}

func TestSubmissionNetSMTP(t *testing.T) {
	sink := &fakeSink{}
	srv, certs := submissionServer(t, sink)
	c, err := netsmtp.Dial(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{RootCAs: certs.roots, ServerName: "localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(netsmtp.PlainAuth("", "alice", "secret", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@remote.test"); err != nil {
		t.Fatal(err)
	}
	wc, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(wc, msg("net/smtp submission"))
	if err := wc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if m := sink.messages(); len(m) != 1 || m[0].sess.AuthUser != "alice" {
		t.Fatalf("messages %+v", m)
	}
}

func TestServerConnsPerIP(t *testing.T) {
	srv := startServer(t, &fakeSink{}, func(c *ServerConfig) { c.Limits.MaxConnsPerIP = 2 })
	a, b := dialWire(t, srv.Addr().String()), dialWire(t, srv.Addr().String())
	a.expect("220")
	b.expect("220")
	c := dialWire(t, srv.Addr().String())
	c.expect("421 4.7.0 Too many connections from your address")
	c.expectClosed()

	a.cmd("QUIT", "221")
	a.expectClosed()
	waitFor(t, "slot to free", func() bool { return srv.ln.open() < 2 })
	d := dialWire(t, srv.Addr().String())
	d.expect("220")
	b.cmd("NOOP", "250")
}

func TestServerTimeouts(t *testing.T) {
	t.Run("command", func(t *testing.T) {
		srv := startServer(t, &fakeSink{}, func(c *ServerConfig) { c.Limits.CommandTimeout = 150 * time.Millisecond })
		w := dialWire(t, srv.Addr().String())
		w.expect("220")
		w.cmd("EHLO c.test", "250")
		start := time.Now()
		w.expect("421 4.4.2")
		w.expectClosed()
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("idle timeout took %v", d)
		}
	})
	t.Run("data", func(t *testing.T) {
		sink := &fakeSink{}
		srv := startServer(t, sink, func(c *ServerConfig) { c.Limits.DataTimeout = 150 * time.Millisecond })
		w := dialWire(t, srv.Addr().String())
		runSteps(t, w, []step{{want: "220"}, {send: "EHLO c.test", want: "250"},
			{send: "MAIL FROM:<a@example.test>", want: "250"}, {send: "RCPT TO:<b@example.test>", want: "250"},
			{send: "DATA", want: "354"}, {raw: "Subject: stalled\r\n"}})
		w.expect("421 4.4.2 Timeout waiting for data")
		w.expectClosed()
		if n := len(sink.messages()); n != 0 {
			t.Fatalf("stored %d messages", n)
		}
	})
}

func TestServerCloseWaitsForSessions(t *testing.T) {
	sink := &fakeSink{block: true, entered: make(chan struct{}, 1)}
	srv := startServer(t, sink, nil)
	w := dialWire(t, srv.Addr().String())
	runSteps(t, w, []step{{want: "220"}, {send: "EHLO c.test", want: "250"},
		{send: "MAIL FROM:<a@example.test>", want: "250"}, {send: "RCPT TO:<b@example.test>", want: "250"},
		{send: "DATA", want: "354"}, {raw: msg("x") + ".\r\n"}})
	select {
	case <-sink.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("sink not called")
	}
	idle := dialWire(t, srv.Addr().String())
	idle.expect("220")
	done := make(chan error)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if n := srv.ln.open(); n != 0 {
		t.Fatalf("%d connections open after Close", n)
	}
	idle.expectClosed()
	if _, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting after Close")
	}
	if err := srv.Start(); err != ErrServerClosed {
		t.Fatalf("Start after Close: %v", err)
	}
}

func TestServerServeContext(t *testing.T) {
	srv, err := NewServer(ServerConfig{Addr: "127.0.0.1:0", Policy: fakePolicy{}, Sink: &fakeSink{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()
	w := dialWire(t, srv.Addr().String())
	w.expect("220 localhost ESMTP")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.expectClosed()
}

func TestServerInjectedListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, &fakeSink{}, func(c *ServerConfig) {
		c.Addr = ""
		c.Listener = l
		c.Mesh = true
		c.MeshPeer = func(s *Session, _ *tls.ConnectionState) bool { return s.Helo == "peer.mesh.test" }
	})
	if srv.Addr().String() != l.Addr().String() {
		t.Fatalf("Addr %v, want %v", srv.Addr(), l.Addr())
	}
	sink := srv.cfg.Sink.(*fakeSink)
	w := dialWire(t, l.Addr().String())
	runSteps(t, w, []step{{want: "220"}, {send: "EHLO peer.mesh.test", want: "250"},
		{send: "MAIL FROM:<a@example.test>", want: "250"}, {send: "RCPT TO:<b@example.test>", want: "250"},
		{send: "DATA", want: "354"}, {raw: msg("x") + ".\r\n", want: "250"}})
	if m := sink.messages(); len(m) != 1 || !m[0].sess.MeshPeer {
		t.Fatalf("messages %+v", m)
	}
}

func TestNewServerValidation(t *testing.T) {
	certs := newTestCerts(t)
	ok := ServerConfig{Addr: "127.0.0.1:0", Policy: fakePolicy{}, Sink: &fakeSink{}}
	tests := []struct {
		name string
		mod  func(*ServerConfig)
		want string
	}{
		{"no policy", func(c *ServerConfig) { c.Policy = nil }, "Policy is required"},
		{"no sink", func(c *ServerConfig) { c.Sink = nil }, "Sink is required"},
		{"submission without TLS", func(c *ServerConfig) { c.Submission = true; c.Auth = fakeAuth{} }, "submission requires TLS"},
		{"submission without auth", func(c *ServerConfig) { c.Submission = true; c.TLS = certs.server }, "requires an Authenticator"},
		{"no address", func(c *ServerConfig) { c.Addr = "" }, "Addr or Listener"},
		{"short lines", func(c *ServerConfig) { c.Limits.MaxLineLength = 100 }, "max_line_length"},
		{"negative size", func(c *ServerConfig) { c.Limits.MaxMessageBytes = -1 }, "max_message_bytes"},
		{"bad address", func(c *ServerConfig) { c.Addr = "256.0.0.1:0" }, "listen 256.0.0.1:0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.mod(&cfg)
			s, err := NewServer(cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// interposedConn stands in for smtp/xlink's connection, which terminates
// STARTTLS below go-smtp and reports the TLS state itself.
type interposedConn struct {
	net.Conn
	tls atomic.Bool
}

func (c *interposedConn) TLSConnectionState() (tls.ConnectionState, bool) {
	return tls.ConnectionState{ServerName: "peer.mesh.test"}, c.tls.Load()
}

type interposedListener struct {
	net.Listener
	conns chan *interposedConn
}

func (l *interposedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	ic := &interposedConn{Conn: c}
	l.conns <- ic
	return ic, nil
}

func TestServerInterposerTLSState(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	il := &interposedListener{Listener: inner, conns: make(chan *interposedConn, 1)}
	sink := &fakeSink{}
	var mu sync.Mutex
	var sawState []bool
	srv := startServer(t, sink, func(c *ServerConfig) {
		c.Addr, c.Listener, c.Mesh = "", il, true
		c.MeshPeer = func(s *Session, st *tls.ConnectionState) bool {
			mu.Lock()
			defer mu.Unlock()
			sawState = append(sawState, st != nil)
			return st != nil && st.ServerName == "peer.mesh.test"
		}
	})
	w := dialWire(t, srv.Addr().String())
	ic := <-il.conns
	w.expect("220")
	w.cmd("EHLO peer.mesh.test", "250")
	// The interposer runs STARTTLS (not visible here) and resets go-smtp.
	ic.tls.Store(true)
	w.cmd("RSET", "250")
	runSteps(t, w, []step{{send: "MAIL FROM:<a@example.test>", want: "250"}, {send: "RCPT TO:<b@example.test>", want: "250"},
		{send: "DATA", want: "354"}, {raw: msg("x") + ".\r\n", want: "250"}})
	m := sink.messages()
	if len(m) != 1 || !m[0].sess.TLS || !m[0].sess.MeshPeer || !strings.Contains(string(m[0].body), "with ESMTPS id") {
		t.Fatalf("messages %+v", m)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sawState) < 2 || sawState[0] {
		t.Fatalf("MeshPeer calls saw TLS state %v, want false first then true", sawState)
	}
}
