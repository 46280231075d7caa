package smtp

import (
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// TestImplicitTLSSubmission: on an implicit-TLS listener (RFC 8314 §3.3)
// the greeting comes inside TLS, STARTTLS is not offered, AUTH is, and the
// session counts as TLS; a client speaking plaintext gets no greeting and is
// cut when its handshake cannot complete.
func TestImplicitTLSSubmission(t *testing.T) {
	certs := newTestCerts(t)
	sink := &fakeSink{}
	srv := startServer(t, sink, func(c *ServerConfig) {
		c.Submission, c.ImplicitTLS = true, true
		c.TLS = certs.server
		c.Auth = fakeAuth{"alice": "secret"}
		c.Limits.CommandTimeout = 2 * time.Second
	})

	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.Addr().String(),
		&tls.Config{RootCAs: certs.roots, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS at connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	w := &wire{t: t, conn: c, tp: textproto.NewConn(c)}
	w.expect("220")
	caps := w.cmd("EHLO client.test", "250")
	if strings.Contains(caps, "STARTTLS") || !strings.Contains(caps, "AUTH PLAIN LOGIN") {
		t.Fatalf("EHLO inside implicit TLS: %q", caps)
	}
	w.cmd("STARTTLS", "5")
	w.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret")), "235")
	runSteps(t, w, []step{{send: "MAIL FROM:<alice@example.test>", want: "250"},
		{send: "RCPT TO:<x@remote.test>", want: "250"}, {send: "DATA", want: "354"},
		{raw: msg("implicit") + ".\r\n", want: "250"}})
	m := sink.messages()
	if len(m) != 1 || !m[0].sess.TLS || m[0].sess.AuthUser != "alice" {
		t.Fatalf("messages %+v", m)
	}
	if !strings.Contains(string(m[0].body), " with ESMTPSA id ") {
		t.Errorf("Received lacks ESMTPSA: %q", m[0].body)
	}

	// A plaintext client: the server waits for a ClientHello and never
	// greets in clear; the bytes it sends fail the handshake and the
	// connection is closed.
	p := dialWire(t, srv.Addr().String())
	p.raw("EHLO plain.test\r\n")
	if rest := p.expectClosed(); strings.Contains(rest, "220") {
		t.Fatalf("plaintext client greeted: %q", rest)
	}
}

func TestImplicitTLSNeedsTLS(t *testing.T) {
	_, err := NewServer(ServerConfig{Addr: "127.0.0.1:0", Policy: fakePolicy{}, Sink: &fakeSink{}, ImplicitTLS: true})
	if err == nil || !strings.Contains(err.Error(), "implicit TLS requires TLS") {
		t.Fatalf("err %v", err)
	}
}
