package smtp

import (
	"crypto/tls"
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

// tlsModes runs f once on a plaintext session and once after STARTTLS; the
// session given to f has been greeted with EHLO in both cases.
func tlsModes(t *testing.T, mod func(*ServerConfig), f func(t *testing.T, w *wire, sink *fakeSink, tlsOn bool)) {
	for _, tlsOn := range []bool{false, true} {
		name := "plain"
		if tlsOn {
			name = "starttls"
		}
		t.Run(name, func(t *testing.T) {
			certs := newTestCerts(t)
			sink := &fakeSink{}
			srv := startServer(t, sink, func(c *ServerConfig) {
				c.TLS = certs.server
				if mod != nil {
					mod(c)
				}
			})
			w := dialWire(t, srv.Addr().String())
			w.expect("220")
			w.cmd("EHLO client.test", "250")
			if tlsOn {
				startTLS(w, certs)
				w.cmd("EHLO client.test", "250")
			}
			f(t, w, sink, tlsOn)
		})
	}
}

func startTLS(w *wire, certs testCerts) {
	w.t.Helper()
	w.cmd("STARTTLS", "220 2.0.0")
	w.upgradeTLS(&tls.Config{RootCAs: certs.roots, ServerName: "localhost"})
}

// finishTransaction sends one message and checks that the sink holds
// exactly it, received over TLS or not as expected.
func finishTransaction(t *testing.T, w *wire, sink *fakeSink, tlsOn bool) {
	t.Helper()
	runSteps(t, w, []step{{send: "RSET", want: "250"},
		{send: "MAIL FROM:<a@example.test>", want: "250"}, {send: "RCPT TO:<b@example.test>", want: "250"},
		{send: "DATA", want: "354"}, {raw: msg("after errors") + ".\r\n", want: "250 2.0.0 OK queued as "}})
	m := sink.messages()
	if len(m) != 1 || m[0].sess.TLS != tlsOn || !strings.HasSuffix(string(m[0].body), msg("after errors")) {
		t.Fatalf("sink holds %+v, want one message with TLS=%v", m, tlsOn)
	}
}

func TestSequenceErrors(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"RCPT before MAIL", []step{{send: "RCPT TO:<b@example.test>", want: "503 5.5.1 Missing MAIL FROM command."}}},
		{"DATA before MAIL", []step{{send: "DATA", want: "503 5.5.1 Missing RCPT TO command."}}},
		{"DATA before RCPT", []step{{send: "MAIL FROM:<a@example.test>", want: "250"},
			{send: "DATA", want: "503 5.5.1 Missing RCPT TO command."}}},
		{"DATA after refused RCPT", []step{{send: "MAIL FROM:<a@example.test>", want: "250"},
			{send: "RCPT TO:<outside@remote.test>", want: "550 5.7.1"},
			{send: "DATA", want: "503 5.5.1 Missing RCPT TO command."}}},
		{"BDAT before MAIL, chunk skipped", []step{{raw: "BDAT 6 LAST\r\nNOOP\r\n", want: "503 5.5.1 Missing RCPT TO command."},
			{send: "NOOP", want: "250"}}},
		{"empty BDAT before RCPT", []step{{send: "MAIL FROM:<a@example.test>", want: "250"},
			{send: "BDAT 0 LAST", want: "503 5.5.1 Missing RCPT TO command."}}},
		{"commands during BDAT transfer", []step{{send: "MAIL FROM:<a@example.test>", want: "250"},
			{send: "RCPT TO:<b@example.test>", want: "250"},
			{raw: "BDAT 3\r\nabc", want: "250 2.0.0 Continue"},
			{send: "MAIL FROM:<a@example.test>", want: "503 5.5.1 MAIL not allowed during message transfer"},
			{send: "RCPT TO:<c@example.test>", want: "503 5.5.1 RCPT not allowed during message transfer"},
			{send: "DATA", want: "503 5.5.1 DATA not allowed during message transfer"}}},
		{"MAIL twice", []step{{send: "MAIL FROM:<a@example.test>", want: "250"},
			{send: "MAIL FROM:<a@example.test>", want: "503 5.5.1 Nested MAIL command"}}},
		{"AUTH without mechanism", []step{{send: "AUTH", want: "501 5.5.4 Missing parameter"}}},
		// Still 502: not implemented (RFC 5321 §4.2.4).
		{"unimplemented command", []step{{send: "EXPN staff", want: "502 5.5.1 EXPN command not implemented"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tlsModes(t, nil, func(t *testing.T, w *wire, sink *fakeSink, tlsOn bool) {
				runSteps(t, w, tc.steps)
				finishTransaction(t, w, sink, tlsOn)
			})
		})
	}
}

func TestSequenceErrorsBeforeEHLO(t *testing.T) {
	certs := newTestCerts(t)
	tests := []struct {
		name     string
		starttls bool // run STARTTLS first (after an EHLO), then no EHLO
		steps    []step
	}{
		{"MAIL", false, []step{{send: "MAIL FROM:<a@example.test>", want: "503 5.5.1 Please introduce yourself first."}}},
		{"AUTH", false, []step{{send: "AUTH PLAIN AGFsaWNlAHNlY3JldA==", want: "503 5.5.1 Please introduce yourself first."}}},
		{"RCPT", false, []step{{send: "RCPT TO:<b@example.test>", want: "503 5.5.1 Missing MAIL FROM command."}}},
		{"DATA", false, []step{{send: "DATA", want: "503 5.5.1 Missing RCPT TO command."}}},
		{"MAIL after STARTTLS", true, []step{{send: "MAIL FROM:<a@example.test>", want: "503 5.5.1 Send EHLO first after STARTTLS"}}},
		{"AUTH after STARTTLS", true, []step{{send: "AUTH PLAIN AGFsaWNlAHNlY3JldA==", want: "503 5.5.1 Send EHLO first after STARTTLS"}}},
		{"RCPT after STARTTLS", true, []step{{send: "RCPT TO:<b@example.test>", want: "503 5.5.1 Missing MAIL FROM command."}}},
		{"DATA after STARTTLS", true, []step{{send: "DATA", want: "503 5.5.1 Missing RCPT TO command."}}},
		{"BDAT after STARTTLS", true, []step{{raw: "BDAT 4 LAST\r\nabcd", want: "503 5.5.1 Missing RCPT TO command."}}},
		{"STARTTLS twice", true, []step{{send: "EHLO client.test", want: "250"}, {send: "STARTTLS", want: "503 5.5.1 TLS already active"}}},
		{"STARTTLS with argument", false, []step{{send: "STARTTLS now", want: "501 5.5.4"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{}
			srv := startServer(t, sink, func(c *ServerConfig) {
				c.TLS = certs.server
				c.Submission = true
				c.Auth = fakeAuth{"alice": "secret"}
			})
			w := dialWire(t, srv.Addr().String())
			w.expect("220")
			if tc.starttls {
				w.cmd("EHLO client.test", "250")
				startTLS(w, certs)
			}
			runSteps(t, w, tc.steps)
			w.cmd("NOOP", "250")
		})
	}
}

func TestSubmissionAuthTLS(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name      string
		tls       bool
		steps     []step
		authState bool
	}{
		{"PLAIN before TLS", false, []step{{send: "AUTH PLAIN " + b64("\x00alice\x00secret"), want: "538 5.7.11"}}, false},
		{"PLAIN without initial response before TLS", false, []step{{send: "AUTH PLAIN", want: "538 5.7.11"}}, false},
		{"LOGIN before TLS", false, []step{{send: "AUTH LOGIN", want: "538 5.7.11"}}, false},
		{"LOGIN with initial response before TLS", false, []step{{send: "AUTH LOGIN " + b64("alice"), want: "538 5.7.11"}}, false},
		{"PLAIN after TLS", true, []step{{send: "AUTH PLAIN " + b64("\x00alice\x00secret"), want: "235 2.0.0"}}, true},
		{"PLAIN without initial response after TLS", true, []step{{send: "AUTH PLAIN", want: "334"},
			{send: b64("\x00alice\x00secret"), want: "235 2.0.0"}}, true},
		{"LOGIN after TLS", true, []step{{send: "AUTH LOGIN", want: "334 " + b64("Username:")},
			{send: b64("alice"), want: "334 " + b64("Password:")}, {send: b64("secret"), want: "235 2.0.0"}}, true},
		{"LOGIN bad password after TLS", true, []step{{send: "AUTH LOGIN " + b64("alice"), want: "334"},
			{send: b64("wrong"), want: "535 5.7.8"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			certs := newTestCerts(t)
			sink := &fakeSink{}
			srv := startServer(t, sink, func(c *ServerConfig) {
				c.Submission, c.TLS, c.Auth = true, certs.server, fakeAuth{"alice": "secret"}
			})
			w := dialWire(t, srv.Addr().String())
			w.expect("220")
			caps := w.cmd("EHLO client.test", "250")
			if strings.Contains(caps, "AUTH") || !strings.Contains(caps, "\nSTARTTLS") {
				t.Fatalf("EHLO before TLS: %q", caps)
			}
			if tc.tls {
				startTLS(w, certs)
				caps = w.cmd("EHLO client.test", "250")
				if !strings.Contains(caps, "\nAUTH PLAIN LOGIN") || strings.Contains(caps, "STARTTLS") {
					t.Fatalf("EHLO after TLS: %q", caps)
				}
			}
			runSteps(t, w, tc.steps)
			if !tc.authState {
				w.cmd("MAIL FROM:<alice@example.test>", "530 5.7.0")
				return
			}
			runSteps(t, w, []step{{send: "MAIL FROM:<alice@example.test>", want: "250"},
				{send: "RCPT TO:<x@remote.test>", want: "250"}, {send: "DATA", want: "354"},
				{raw: msg("sub") + ".\r\n", want: "250"}})
			if m := sink.messages(); len(m) != 1 || m[0].sess.AuthUser != "alice" || !m[0].sess.TLS {
				t.Fatalf("messages %+v", m)
			}
		})
	}
}

// content holds lines that look like commands and replies; none of them
// may be acted on or rewritten while it is message content. It starts with
// one, since the first line follows a reply (354, 250 Continue).
const content = "STARTTLS\r\n" +
	"Subject: protocol lookalikes\r\n\r\n" +
	"502 5.5.1 Missing MAIL FROM command.\r\n" +
	"502 5.5.1 Please introduce yourself first.\r\n" +
	"STARTTLS\r\n" +
	"MAIL FROM:<evil@example.test>\r\n" +
	"RCPT TO:<b@example.test>\r\n" +
	"250-STARTTLS\r\n" +
	"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n" +
	"DATA\r\n" +
	"BDAT 5 LAST\r\n" +
	"QUIT\r\n"

func TestContentPassesUntouched(t *testing.T) {
	// DATA content is dot-stuffed on the wire; BDAT content is raw and may
	// hold a lone "." line.
	dataWire := content + "..dot-stuffed\r\n.\r\n"
	dataBody := content + ".dot-stuffed\r\n"
	bdatBody := content + ".\r\n" + "tail without CRLF"
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{"DATA", "DATA\r\n", dataBody},
		{"BDAT one chunk", "BDAT " + strconv.Itoa(len(bdatBody)) + " LAST\r\n" + bdatBody, bdatBody},
		{"BDAT split inside a line", "BDAT 40\r\n" + bdatBody[:40], bdatBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tlsModes(t, nil, func(t *testing.T, w *wire, sink *fakeSink, tlsOn bool) {
				w.cmd("MAIL FROM:<a@example.test>", "250")
				w.cmd("RCPT TO:<b@example.test>", "250")
				switch tc.name {
				case "DATA":
					w.cmd("DATA", "354")
					w.raw(dataWire)
				case "BDAT one chunk":
					w.raw(tc.raw)
				default:
					w.raw(tc.raw)
					w.expect("250 2.0.0 Continue")
					rest := bdatBody[40:]
					w.raw("BDAT " + strconv.Itoa(len(rest)) + " LAST\r\n" + rest)
				}
				w.expect("250 2.0.0 OK queued as ")
				w.cmd("NOOP", "250")
				m := sink.messages()
				if len(m) != 1 {
					t.Fatalf("sink holds %d messages", len(m))
				}
				if !strings.HasSuffix(string(m[0].body), tc.want) || m[0].sess.TLS != tlsOn {
					t.Fatalf("body %q (TLS %v), want it to end with %q", m[0].body, m[0].sess.TLS, tc.want)
				}
			})
		})
	}
}

func TestSinkReplyUntouched(t *testing.T) {
	// A verdict on the message is the Sink's; even text that matches a
	// go-smtp sequence error keeps its code.
	odd := &gosmtp.SMTPError{Code: 502, EnhancedCode: gosmtp.EnhancedCode{5, 5, 1}, Message: "Missing RCPT TO command."}
	for _, useBDAT := range []bool{false, true} {
		sink := &fakeSink{err: odd}
		srv := startServer(t, sink, nil)
		w := dialWire(t, srv.Addr().String())
		runSteps(t, w, []step{{want: "220"}, {send: "EHLO c.test", want: "250"},
			{send: "MAIL FROM:<a@example.test>", want: "250"}, {send: "RCPT TO:<b@example.test>", want: "250"}})
		body := msg("x")
		if useBDAT {
			w.raw("BDAT " + strconv.Itoa(len(body)) + " LAST\r\n" + body)
		} else {
			w.cmd("DATA", "354")
			w.raw(body + ".\r\n")
		}
		w.expect("502 5.5.1 Missing RCPT TO command.")
		w.cmd("NOOP", "250")
	}
}

func TestPipelinedReplies(t *testing.T) {
	tlsModes(t, nil, func(t *testing.T, w *wire, sink *fakeSink, tlsOn bool) {
		body2 := msg("second")
		w.raw("RCPT TO:<b@example.test>\r\n" +
			"MAIL FROM:<a@example.test>\r\n" +
			"DATA\r\n" +
			"RCPT TO:<outside@remote.test>\r\n" +
			"RCPT TO:<b@example.test>\r\n" +
			"MAIL FROM:<a@example.test>\r\n" +
			"DATA\r\n" +
			msg("first") + ".\r\n" +
			"DATA\r\n" +
			"MAIL FROM:<a@example.test>\r\n" +
			"RCPT TO:<c@example.test>\r\n" +
			"BDAT " + strconv.Itoa(len(body2)) + " LAST\r\n" + body2 +
			"RCPT TO:<c@example.test>\r\n" +
			"NOOP\r\n")
		for i, want := range []string{
			"503 5.5.1 Missing MAIL FROM command.",
			"250", // MAIL
			"503 5.5.1 Missing RCPT TO command.",
			"550 5.7.1", // relay denied
			"250",       // RCPT
			"503 5.5.1 Nested MAIL command",
			"354",
			"250 2.0.0 OK queued as ",
			"503 5.5.1 Missing RCPT TO command.",
			"250", "250", // MAIL, RCPT
			"250 2.0.0 OK queued as ",
			"503 5.5.1 Missing MAIL FROM command.",
			"250", // NOOP
		} {
			if r := w.reply(); !strings.HasPrefix(r, want) {
				t.Fatalf("reply %d: %q, want prefix %q", i, r, want)
			}
		}
		m := sink.messages()
		if len(m) != 2 || !strings.HasSuffix(string(m[0].body), msg("first")) || !strings.HasSuffix(string(m[1].body), body2) {
			t.Fatalf("messages %+v", m)
		}
	})
}

func TestStartTLSDiscardsPipelinedPlaintext(t *testing.T) {
	// RFC 3207 §4.2 (and the 2011 STARTTLS command-injection bugs):
	// commands sent in the clear after STARTTLS must not run inside TLS.
	certs := newTestCerts(t)
	sink := &fakeSink{}
	srv := startServer(t, sink, func(c *ServerConfig) { c.TLS = certs.server })
	w := dialWire(t, srv.Addr().String())
	w.expect("220")
	w.cmd("EHLO client.test", "250")
	w.raw("STARTTLS\r\nMAIL FROM:<evil@example.test>\r\n")
	w.expect("220 2.0.0")
	w.upgradeTLS(&tls.Config{RootCAs: certs.roots, ServerName: "localhost"})
	caps := w.cmd("EHLO client.test", "250")
	if strings.Contains(caps, "STARTTLS") {
		t.Errorf("STARTTLS offered inside TLS: %q", caps)
	}
	w.cmd("RCPT TO:<b@example.test>", "503 5.5.1 Missing MAIL FROM command.")
	finishTransaction(t, w, sink, true)
}

func TestStartTLSHandshakeFailure(t *testing.T) {
	certs := newTestCerts(t)
	srv := startServer(t, &fakeSink{}, func(c *ServerConfig) { c.TLS = certs.server })
	w := dialWire(t, srv.Addr().String())
	w.expect("220")
	w.cmd("EHLO client.test", "250")
	w.cmd("STARTTLS", "220")
	w.raw("this is not a TLS ClientHello\r\n")
	w.expectClosed()
	waitFor(t, "connection released", func() bool { return srv.ln.open() == 0 })
}

// TestInterposedListenerRenumbers covers mesh listeners: TLS is terminated
// by smtp/xlink below the server (ServerConfig.TLS nil), and the sequence
// errors are still 503.
func TestInterposedListenerRenumbers(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	il := &interposedListener{Listener: inner, conns: make(chan *interposedConn, 1)}
	sink := &fakeSink{}
	srv := startServer(t, sink, func(c *ServerConfig) { c.Addr, c.Listener, c.Mesh = "", il, true })
	w := dialWire(t, srv.Addr().String())
	ic := <-il.conns
	w.expect("220")
	if caps := w.cmd("EHLO peer.mesh.test", "250"); strings.Contains(caps, "STARTTLS") {
		t.Fatalf("server without TLS offers STARTTLS: %q", caps)
	}
	w.cmd("RCPT TO:<b@example.test>", "503 5.5.1")
	ic.tls.Store(true) // the interposer ran STARTTLS
	w.cmd("EHLO peer.mesh.test", "250")
	w.cmd("DATA", "503 5.5.1")
	finishTransaction(t, w, sink, true)
}

func TestRenumber(t *testing.T) {
	tests := []struct{ verb, line, want string }{
		{"MAIL", "502 5.5.1 Please introduce yourself first.\r\n", "503 5.5.1 Please introduce yourself first.\r\n"},
		{"AUTH", "502 5.5.1 Please introduce yourself first.\r\n", "503 5.5.1 Please introduce yourself first.\r\n"},
		{"RCPT", "502 5.5.1 Missing MAIL FROM command.\r\n", "503 5.5.1 Missing MAIL FROM command.\r\n"},
		{"DATA", "502 5.5.1 Missing RCPT TO command.\r\n", "503 5.5.1 Missing RCPT TO command.\r\n"},
		{"BDAT", "502 5.5.1 Missing RCPT TO command.\r\n", "503 5.5.1 Missing RCPT TO command.\r\n"},
		{"MAIL", "502 5.5.1 MAIL not allowed during message transfer\r\n", "503 5.5.1 MAIL not allowed during message transfer\r\n"},
		{"RCPT", "502 5.5.1 RCPT not allowed during message transfer\r\n", "503 5.5.1 RCPT not allowed during message transfer\r\n"},
		{"DATA", "502 5.5.1 DATA not allowed during message transfer\r\n", "503 5.5.1 DATA not allowed during message transfer\r\n"},
		{"DATA", "502 5.5.1 DATA not allowed for BINARYMIME messages\r\n", "503 5.5.1 DATA not allowed for BINARYMIME messages\r\n"},
		{"AUTH", "502 5.5.4 Missing parameter\r\n", "501 5.5.4 Missing parameter\r\n"},
		// Unchanged: another verb's reply, not implemented, other codes.
		{"RCPT", "502 5.5.1 Please introduce yourself first.\r\n", "502 5.5.1 Please introduce yourself first.\r\n"},
		{"EXPN", "502 5.5.1 EXPN command not implemented\r\n", "502 5.5.1 EXPN command not implemented\r\n"},
		{"STARTTLS", "502 5.5.1 TLS not supported\r\n", "502 5.5.1 TLS not supported\r\n"},
		{"AUTH", "502 5.7.0 Authentication not supported\r\n", "502 5.7.0 Authentication not supported\r\n"},
		{"DATA", "502 5.5.1 Missing RCPT TO command. \r\n", "502 5.5.1 Missing RCPT TO command. \r\n"},
		{"DATA", "250 2.0.0 Missing RCPT TO command.\r\n", "250 2.0.0 Missing RCPT TO command.\r\n"},
	}
	for _, tc := range tests {
		if got := string(renumber(tc.verb, []byte(tc.line))); got != tc.want {
			t.Errorf("renumber(%s, %q) = %q, want %q", tc.verb, tc.line, got, tc.want)
		}
	}
}
