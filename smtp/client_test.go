package smtp

import (
	"github.com/meshd/meshd/smtp/reply"

	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/meshd/meshd/internal/testkit"
)

func out(rcpts ...string) Outgoing {
	m := Outgoing{From: "a@example.test", Body: []byte(msg("client") + ".leading dot\r\n")}
	for _, r := range rcpts {
		m.Rcpts = append(m.Rcpts, Rcpt{Addr: r})
	}
	return m
}

func newTestClient(t *testing.T, cfg ClientConfig) *Client {
	t.Helper()
	if cfg.HeloName == "" {
		cfg.HeloName = "client.meshd.test"
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 5 * time.Second
	}
	c := NewClient(cfg)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func send(t *testing.T, c *Client, addr string, m Outgoing) ([]RcptResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Send(ctx, addr, m)
}

func TestClientDeliversAndReuses(t *testing.T) {
	mta := startMTA(t, nil)
	c := newTestClient(t, ClientConfig{})
	for i := 0; i < 5; i++ {
		res, err := send(t, c, mta.addr, out("b@remote.test"))
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || res[0].Code != 250 || res[0].Enhanced.String() != "2.0.0" || !res[0].OK() {
			t.Fatalf("results %+v", res)
		}
	}
	accepts, _, msgs := mta.stats()
	if accepts != 1 {
		t.Errorf("%d connections for 5 messages, want 1", accepts)
	}
	if len(msgs) != 5 || msgs[0].body != msg("client")+".leading dot\r\n" {
		t.Fatalf("messages %d, first body %q", len(msgs), msgs[0].body)
	}
	if c.IdleSessions(mta.addr) != 1 {
		t.Errorf("idle sessions %d", c.IdleSessions(mta.addr))
	}
}

func TestClientDropsStaleSession(t *testing.T) {
	mta := startMTA(t, nil)
	c := newTestClient(t, ClientConfig{})
	if _, err := send(t, c, mta.addr, out("b@remote.test")); err != nil {
		t.Fatal(err)
	}
	mta.dropConns() // the server hangs up on the idle session
	if _, err := send(t, c, mta.addr, out("b@remote.test")); err != nil {
		t.Fatalf("send after server dropped idle session: %v", err)
	}
	if accepts, _, msgs := mta.stats(); accepts != 2 || len(msgs) != 2 {
		t.Fatalf("accepts %d msgs %d, want 2 and 2", accepts, len(msgs))
	}
}

func TestClientIdleTimeoutAndMaxIdle(t *testing.T) {
	mta := startMTA(t, nil)
	c := newTestClient(t, ClientConfig{IdleTimeout: 100 * time.Millisecond, MaxIdlePerHost: 1})
	if _, err := send(t, c, mta.addr, out("b@remote.test")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "idle session to expire", func() bool { return c.IdleSessions(mta.addr) == 0 })
	if _, err := send(t, c, mta.addr, out("b@remote.test")); err != nil {
		t.Fatal(err)
	}
	if accepts, _, _ := mta.stats(); accepts != 2 {
		t.Fatalf("accepts %d, want 2 (expired session not reused)", accepts)
	}

	// Concurrent sends open parallel sessions; only MaxIdlePerHost stay.
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() { _, err := send(t, c, mta.addr, out("b@remote.test")); errs <- err }()
	}
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := c.IdleSessions(mta.addr); n > 1 {
		t.Fatalf("idle sessions %d > MaxIdlePerHost 1", n)
	}
}

// TestClientCloseIdle: after CloseIdle no session from before it carries
// another message: the idle one is closed, and one being dialled while
// CloseIdle ran delivers its message and is then closed, not kept.
func TestClientCloseIdle(t *testing.T) {
	mta := startMTA(t, nil)
	var c *Client
	var closeDuringDial atomic.Bool
	d := &net.Dialer{}
	c = newTestClient(t, ClientConfig{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if closeDuringDial.Swap(false) {
			c.CloseIdle()
		}
		return d.DialContext(ctx, network, addr)
	}})
	if _, err := send(t, c, mta.addr, out("b@remote.test")); err != nil {
		t.Fatal(err)
	}
	if n := c.IdleSessions(mta.addr); n != 1 {
		t.Fatalf("idle sessions %d, want 1", n)
	}
	c.CloseIdle()
	if n := c.IdleSessions(mta.addr); n != 0 {
		t.Fatalf("idle sessions %d after CloseIdle, want 0", n)
	}
	closeDuringDial.Store(true)
	if _, err := send(t, c, mta.addr, out("b@remote.test")); err != nil {
		t.Fatal(err)
	}
	if n := c.IdleSessions(mta.addr); n != 0 {
		t.Fatalf("a session dialled during CloseIdle was kept (%d idle)", n)
	}
	if _, err := send(t, c, mta.addr, out("b@remote.test")); err != nil {
		t.Fatal(err)
	}
	if accepts, _, msgs := mta.stats(); accepts != 3 || len(msgs) != 3 {
		t.Fatalf("accepts %d msgs %d, want 3 and 3 (no session reused across CloseIdle)", accepts, len(msgs))
	}
	if n := c.IdleSessions(mta.addr); n != 1 {
		t.Fatalf("idle sessions %d after a send on a new session, want 1", n)
	}
}

func TestClientNoReuse(t *testing.T) {
	mta := startMTA(t, nil)
	c := newTestClient(t, ClientConfig{MaxIdlePerHost: -1})
	for i := 0; i < 2; i++ {
		if _, err := send(t, c, mta.addr, out("b@remote.test")); err != nil {
			t.Fatal(err)
		}
	}
	if accepts, _, _ := mta.stats(); accepts != 2 {
		t.Fatalf("accepts %d, want 2", accepts)
	}
}

func TestClientPerRecipient(t *testing.T) {
	unknown := &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	full := &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
	for _, pipelining := range []bool{true, false} {
		name := "pipelining"
		if !pipelining {
			name = "lockstep"
		}
		t.Run(name, func(t *testing.T) {
			mta := startMTA(t, func(_ *gosmtp.Server, m *testMTA) {
				m.rcptErr["bad@remote.test"] = unknown
				m.rcptErr["full@remote.test"] = full
			})
			c := newTestClient(t, ClientConfig{})
			if !pipelining {
				// Strip PIPELINING from what the client believes.
				cc, err := c.get(context.Background(), mta.addr)
				if err != nil {
					t.Fatal(err)
				}
				delete(cc.ext, "PIPELINING")
				c.put(cc)
			}
			res, err := send(t, c, mta.addr, out("ok@remote.test", "bad@remote.test", "full@remote.test", "ok2@remote.test"))
			if err != nil {
				t.Fatal(err)
			}
			want := []struct {
				code int
				enh  string
				temp bool
			}{{250, "2.0.0", false}, {550, "5.1.1", false}, {452, "4.2.2", true}, {250, "2.0.0", false}}
			for i, w := range want {
				if res[i].Code != w.code || res[i].Enhanced.String() != w.enh || res[i].Temporary() != w.temp {
					t.Errorf("rcpt %d: %+v, want %d %s", i, res[i], w.code, w.enh)
				}
			}
			if res[1].Reply.String() != "550 5.1.1 no such user" {
				t.Errorf("Reply() = %q", res[1].Reply.String())
			}
			_, _, msgs := mta.stats()
			if len(msgs) != 1 || strings.Join(msgs[0].rcpts, ",") != "ok@remote.test,ok2@remote.test" {
				t.Fatalf("delivered %+v", msgs)
			}

			// All refused: no DATA, no error, and the session is reused.
			res, err = send(t, c, mta.addr, out("bad@remote.test", "full@remote.test"))
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Code != 550 || res[1].Code != 452 {
				t.Fatalf("results %+v", res)
			}
			accepts, dataCalls, _ := mta.stats()
			if dataCalls != 1 || accepts != 1 {
				t.Fatalf("data calls %d accepts %d, want 1 and 1", dataCalls, accepts)
			}
			if _, err := send(t, c, mta.addr, out("ok@remote.test")); err != nil {
				t.Fatalf("session after all-refused transaction: %v", err)
			}
		})
	}
}

func TestClientTransactionErrors(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(*gosmtp.Server, *testMTA)
		op       string
		code     int
		enh      string
		temp     bool
		rcptCode int // result code for the accepted recipient, 0 = no results
	}{
		{"MAIL 4xx", func(_ *gosmtp.Server, m *testMTA) {
			m.mailErr = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 7, 1}, Message: "greylisted"}
		}, "mail", 451, "4.7.1", true, 0},
		{"MAIL 5xx", func(_ *gosmtp.Server, m *testMTA) {
			m.mailErr = &gosmtp.SMTPError{Code: 553, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "sender rejected"}
		}, "mail", 553, "5.7.1", false, 0},
		{"DATA 4xx", func(_ *gosmtp.Server, m *testMTA) {
			m.dataErr = &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 3, 1}, Message: "queue full"}
		}, "data", 452, "4.3.1", true, 452},
		{"DATA 5xx", func(_ *gosmtp.Server, m *testMTA) {
			m.dataErr = &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0}, Message: "content rejected"}
		}, "data", 554, "5.6.0", false, 554},
		{"over remote SIZE", func(s *gosmtp.Server, _ *testMTA) { s.MaxMessageBytes = 10 }, "mail", 552, "5.3.4", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mta := startMTA(t, tc.mod)
			c := newTestClient(t, ClientConfig{})
			res, err := send(t, c, mta.addr, out("b@remote.test"))
			var de *DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T), want *DeliveryError", err, err)
			}
			if de.Op != tc.op || de.Code != tc.code || de.Enhanced.String() != tc.enh || de.Temporary != tc.temp {
				t.Fatalf("error %+v, want op %s code %d %s temp %v", de, tc.op, tc.code, tc.enh, tc.temp)
			}
			if tc.rcptCode == 0 && res != nil {
				t.Fatalf("results %+v, want none", res)
			}
			if tc.rcptCode != 0 && (len(res) != 1 || res[0].Code != tc.rcptCode) {
				t.Fatalf("results %+v, want code %d", res, tc.rcptCode)
			}
			if !strings.Contains(de.Error(), mta.addr) {
				t.Errorf("Error() %q lacks the address", de.Error())
			}
		})
	}
}

func TestClientConnectErrors(t *testing.T) {
	mta := startMTA(t, nil)
	addr := mta.addr
	c := newTestClient(t, ClientConfig{ConnectTimeout: 2 * time.Second})
	_ = mta.ln.Close() // nothing listens any more
	_, err := send(t, c, addr, out("b@remote.test"))
	var de *DeliveryError
	if !errors.As(err, &de) || de.Op != "connect" || !de.Temporary || de.Code != 0 {
		t.Fatalf("error %#v", err)
	}

	// A stalled server: ctx cancellation ends the attempt promptly.
	sink := &fakeSink{block: true}
	srv := startServer(t, sink, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Send(ctx, srv.Addr().String(), out("b@example.test"))
	if !errors.As(err, &de) || !de.Temporary || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %#v, want temporary wrapping DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
}

func TestClientSTARTTLS(t *testing.T) {
	certs := newTestCerts(t)
	withTLS := func(s *gosmtp.Server, _ *testMTA) { s.TLSConfig = certs.server }
	tests := []struct {
		name    string
		mod     func(*gosmtp.Server, *testMTA)
		cfg     ClientConfig
		wantTLS bool
		wantErr string // op of a temporary *DeliveryError; "" = delivered
	}{
		{"verified", withTLS, ClientConfig{TLS: &tls.Config{RootCAs: certs.roots}}, true, ""},
		{"opportunistic self-signed", withTLS, ClientConfig{Opportunistic: true}, true, ""},
		{"opportunistic not offered", nil, ClientConfig{Opportunistic: true}, false, ""},
		{"required not offered", nil, ClientConfig{RequireTLS: true, Opportunistic: true}, false, "starttls"},
		{"required unverified", withTLS, ClientConfig{RequireTLS: true, Opportunistic: true}, true, ""},
		{"verification fails", withTLS, ClientConfig{TLS: &tls.Config{}}, false, "starttls"},
		{"opportunistic falls back after failed handshake", func(s *gosmtp.Server, _ *testMTA) {
			cfg := certs.server.Clone()
			cfg.ClientAuth = tls.RequireAnyClientCert
			s.TLSConfig = cfg
		}, ClientConfig{Opportunistic: true}, false, ""},
		{"plain when TLS not configured", withTLS, ClientConfig{}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mta := startMTA(t, tc.mod)
			c := newTestClient(t, tc.cfg)
			_, err := send(t, c, mta.addr, out("b@remote.test"))
			if tc.wantErr != "" {
				var de *DeliveryError
				if !errors.As(err, &de) || de.Op != tc.wantErr || !de.Temporary {
					t.Fatalf("error %v, want temporary %s failure", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, _, msgs := mta.stats()
			if len(msgs) != 1 || msgs[0].tls != tc.wantTLS {
				t.Fatalf("messages %+v, want tls=%v", msgs, tc.wantTLS)
			}
		})
	}
}

func TestClientDSNAndParameters(t *testing.T) {
	m := out("b@remote.test")
	m.Rcpts[0].Notify = []string{"SUCCESS", "FAILURE"}
	m.Rcpts[0].ORcpt = "rfc822;orig+x@remote.test"
	m.Ret, m.EnvID = "HDRS", "env id=1"
	m.EightBit, m.SMTPUTF8 = true, true

	t.Run("advertised", func(t *testing.T) {
		mta := startMTA(t, func(s *gosmtp.Server, _ *testMTA) { s.EnableDSN = true; s.EnableSMTPUTF8 = true })
		c := newTestClient(t, ClientConfig{})
		if _, err := send(t, c, mta.addr, m); err != nil {
			t.Fatal(err)
		}
		_, _, msgs := mta.stats()
		got := msgs[0]
		if got.mailOpts.Return != "HDRS" || got.mailOpts.EnvelopeID != "env id=1" || !got.mailOpts.UTF8 ||
			got.mailOpts.Body != gosmtp.Body8BitMIME || got.mailOpts.Size != int64(len(m.Body)) {
			t.Errorf("mail options %+v", got.mailOpts)
		}
		ro := got.rcptOpts[0]
		if len(ro.Notify) != 2 || ro.Notify[0] != "SUCCESS" || ro.OriginalRecipient != "orig+x@remote.test" ||
			ro.OriginalRecipientType != gosmtp.DSNAddressTypeRFC822 {
			t.Errorf("rcpt options %+v", ro)
		}
	})
	t.Run("not advertised", func(t *testing.T) {
		// go-smtp refuses parameters it does not advertise, so delivery
		// proves they were left out.
		mta := startMTA(t, nil)
		c := newTestClient(t, ClientConfig{})
		if _, err := send(t, c, mta.addr, m); err != nil {
			t.Fatal(err)
		}
		non := m
		non.Rcpts = []Rcpt{{Addr: "bü@remote.test"}}
		_, err := send(t, c, mta.addr, non)
		var de *DeliveryError
		if !errors.As(err, &de) || de.Temporary || de.Enhanced.String() != "5.6.7" {
			t.Fatalf("UTF-8 address to non-SMTPUTF8 server: %v", err)
		}
	})
}

func TestClientLMTP(t *testing.T) {
	mta := startMTA(t, func(s *gosmtp.Server, m *testMTA) {
		s.LMTP = true
		m.rcptErr["nouser@local.test"] = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		m.lmtpData = map[string]error{
			"quota@local.test": &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 2, 2}, Message: "over quota"},
			"bad@local.test":   &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0}, Message: "refused"},
		}
	})
	c := newTestClient(t, ClientConfig{LMTP: true})
	res, err := send(t, c, mta.addr, out("ok@local.test", "quota@local.test", "nouser@local.test", "bad@local.test"))
	if err != nil {
		t.Fatal(err)
	}
	// go-smtp's LMTP server puts "<rcpt> " before the DATA reply texts.
	want := []string{"250 2.0.0", "452 4.2.2 <quota@local.test> over quota", "550 5.1.1 no such user", "554 5.6.0 <bad@local.test> refused"}
	for i, w := range want {
		if !strings.HasPrefix(res[i].Reply.String(), w) {
			t.Errorf("rcpt %s: %q, want %q", res[i].Addr, res[i].Reply.String(), w)
		}
	}
	// Reuse works with LHLO sessions too.
	if _, err := send(t, c, mta.addr, out("ok@local.test")); err != nil {
		t.Fatal(err)
	}
	if accepts, _, _ := mta.stats(); accepts != 1 {
		t.Fatalf("accepts %d, want 1", accepts)
	}
}

// TestClientToServer runs the client against this package's server:
// submission-style TLS, per-recipient policy and the "queued as" reply.
func TestClientToServer(t *testing.T) {
	certs := newTestCerts(t)
	sink := &idSink{}
	srv := startServer(t, sink, func(c *ServerConfig) { c.TLS = certs.server })
	c := newTestClient(t, ClientConfig{RequireTLS: true, TLS: &tls.Config{RootCAs: certs.roots}})
	res, err := send(t, c, srv.Addr().String(), out("b@example.test", "outside@remote.test"))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Reply.String() != "250 2.0.0 OK queued as q-12345678" || res[1].Reply.String() != "550 5.7.1 Relay access denied" {
		t.Fatalf("results %+v", res)
	}
	m := sink.messages()
	if len(m) != 1 || !m[0].sess.TLS || !strings.Contains(string(m[0].body), "with ESMTPS id") || m[0].sess.Helo != "client.meshd.test" {
		t.Fatalf("messages %+v", m)
	}
}

func TestReplyFromText(t *testing.T) {
	tests := []struct {
		code      int
		msg       string
		enh, text string
	}{
		{250, "2.0.0 OK queued as x", "2.0.0", "OK queued as x"},
		{550, "5.1.1 no such user", "5.1.1", "no such user"},
		{550, "no enhanced code", "", "no enhanced code"},
		{451, "5.1.1 class mismatch", "", "5.1.1 class mismatch"},
		{250, "2.0.0 first\n2.0.0 second", "2.0.0", "first\nsecond"},
		{421, "4.4.2", "4.4.2", ""},
		{250, "mx.test Hello\nPIPELINING", "", "mx.test Hello\nPIPELINING"},
	}
	for _, tc := range tests {
		r := reply.FromText(tc.code, tc.msg)
		if r.Enhanced.String() != tc.enh || r.Text != tc.text {
			t.Errorf("FromText(%d, %q) = %q %q, want %q %q", tc.code, tc.msg, r.Enhanced, r.Text, tc.enh, tc.text)
		}
	}
}

func TestXtext(t *testing.T) {
	tests := map[string]string{"plain": "plain", "a+b=c d": "a+2Bb+3Dc+20d", "é": "+C3+A9"}
	for in, want := range tests {
		if got := xtext(in); got != want {
			t.Errorf("xtext(%q) = %q, want %q", in, got, want)
		}
	}
	if got := utf8AddrXtext("bü+@x"); got != `b\x{FC}\x{2B}@x` {
		t.Errorf("utf8AddrXtext = %q", got)
	}
}

// TestClientLMTPConnectionLost: an LMTP server that answers the first
// recipient after DATA and then drops the connection.
func TestClientLMTPConnectionLost(t *testing.T) {
	peer := testkit.NewScript(t,
		testkit.Step{Reply: "220 lmtp.test LMTP"}, testkit.Step{Expect: "LHLO", Reply: "250-lmtp.test\r\n250 PIPELINING"},
		testkit.Step{Expect: "MAIL", Reply: "250 2.1.0 ok"}, testkit.Step{Expect: "RCPT", Reply: "250 2.1.5 ok"},
		testkit.Step{Expect: "RCPT", Reply: "250 2.1.5 ok"}, testkit.Step{Expect: "DATA", Reply: "354 go"},
		testkit.Step{Expect: testkit.Data, Reply: "250 2.0.0 <one@local.test> delivered"},
	)
	c := newTestClient(t, ClientConfig{LMTP: true})
	res, err := send(t, c, peer.Addr, out("one@local.test", "two@local.test"))
	if err != nil {
		t.Fatal(err)
	}
	if err := peer.Wait(); err != nil {
		t.Fatal(err)
	}
	if res[0].Code != 250 || res[1].Code != 451 || res[1].Enhanced.String() != "4.4.2" {
		t.Fatalf("results %+v", res)
	}
	if c.IdleSessions(peer.Addr) != 0 {
		t.Fatal("broken session kept for reuse")
	}
}

// TestClientPipelinesRSET: on a reused session with PIPELINING the RSET goes
// in the same write as the next envelope. This server answers RSET only
// after it has read the MAIL behind it, so a client that waited for the
// RSET reply first would hang until its command timeout.
func TestClientPipelinesRSET(t *testing.T) {
	transaction := []testkit.Step{{Expect: "RCPT", Reply: "250 2.1.5 ok"}, {Expect: "DATA", Reply: "354 go"}, {Expect: testkit.Data, Reply: "250 2.0.0 queued"}}
	steps := []testkit.Step{{Reply: "220 mx.test ESMTP"}, {Expect: "EHLO", Reply: "250-mx.test\r\n250 PIPELINING"}, {Expect: "MAIL", Reply: "250 2.1.0 ok"}}
	steps = append(steps, transaction...)
	// The second message: RSET is answered only once MAIL is in.
	steps = append(steps, testkit.Step{Expect: "RSET"}, testkit.Step{Expect: "MAIL", Reply: "250 2.0.0 reset\r\n250 2.1.0 ok"})
	steps = append(steps, transaction...)
	peer := testkit.NewScript(t, steps...)
	c := newTestClient(t, ClientConfig{CommandTimeout: 3 * time.Second})
	for i := range 2 {
		res, err := send(t, c, peer.Addr, out("b@remote.test"))
		if err != nil || len(res) != 1 || res[0].Code != 250 {
			t.Fatalf("message %d: results %+v, err %v", i+1, res, err)
		}
	}
	if err := peer.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestClientUnansweredDot: a connection lost after the final dot leaves
// the transaction in doubt (Unanswered); one lost before the content, or
// a refusal, does not.
func TestClientUnansweredDot(t *testing.T) {
	head := []testkit.Step{
		{Reply: "220 mx.test ESMTP"}, {Expect: "EHLO", Reply: "250 mx.test"},
		{Expect: "MAIL", Reply: "250 2.1.0 ok"}, {Expect: "RCPT", Reply: "250 2.1.5 ok"},
	}
	for _, tc := range []struct {
		name       string
		tail       []testkit.Step
		unanswered bool
	}{
		{"after the dot", []testkit.Step{{Expect: "DATA", Reply: "354 go"}, {Expect: testkit.Data}}, true},
		{"before the content", []testkit.Step{{Expect: "DATA"}}, false},
		{"refused", []testkit.Step{{Expect: "DATA", Reply: "354 go"}, {Expect: testkit.Data, Reply: "451 4.3.0 try later"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := testkit.NewScript(t, append(slices.Clone(head), tc.tail...)...)
			c := newTestClient(t, ClientConfig{})
			_, err := send(t, c, peer.Addr, out("b@remote.test"))
			var de *DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("error %v, want *DeliveryError", err)
			}
			if de.Unanswered != tc.unanswered || !de.Temporary {
				t.Fatalf("error %+v: Unanswered %v, want %v", de, de.Unanswered, tc.unanswered)
			}
		})
	}
}
