package smtp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"go.uber.org/goleak"

	"github.com/meshd/meshd/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCerts is a certificate for 127.0.0.1 and localhost and a pool that
// trusts its CA.
type testCerts struct {
	server *tls.Config
	roots  *x509.CertPool
}

func newTestCerts(t testing.TB) testCerts {
	t.Helper()
	h := testkit.Localhost(t)
	return testCerts{server: h.ServerTLS(), roots: h.ClientTLS().RootCAs}
}

// received is one message handed to a sink.
type received struct {
	sess Session
	env  Envelope
	body []byte
}

// fakeSink records messages; err, if set, is returned instead.
type fakeSink struct {
	mu   sync.Mutex
	msgs []received
	err  error
	// block, if set, makes Accept wait for ctx to end.
	block bool
	// entered is signalled (non-blocking) when Accept starts.
	entered chan struct{}
}

func (f *fakeSink) Accept(ctx context.Context, s *Session, env Envelope, body []byte) error {
	if f.entered != nil {
		select {
		case f.entered <- struct{}{}:
		default:
		}
	}
	if f.block {
		<-ctx.Done()
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.msgs = append(f.msgs, received{sess: *s, env: env, body: append([]byte(nil), body...)})
	return nil
}

func (f *fakeSink) messages() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.msgs...)
}

// idSink reports a fixed queue ID.
type idSink struct{ fakeSink }

func (s *idSink) AcceptID(ctx context.Context, sess *Session, env Envelope, body []byte) (string, error) {
	return "q-12345678", s.Accept(ctx, sess, env, body)
}

// fakePolicy accepts everything except the addresses in deny (-> that
// error) .
type fakePolicy struct{ deny map[string]error }

func (p fakePolicy) CheckRcpt(s *Session, rcpt string) error {
	if err, ok := p.deny[rcpt]; ok {
		return err
	}
	return nil
}

type fakeAuth map[string]string

func (a fakeAuth) Authenticate(user, pass string) bool {
	p, ok := a[user]
	return ok && p == pass
}

var errBoom = errors.New("disk on fire")

var relayDenied = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied"}

// startServer starts a Server on 127.0.0.1:0; mod adjusts the config.
func startServer(t testing.TB, sink Sink, mod func(*ServerConfig)) *Server {
	t.Helper()
	cfg := ServerConfig{
		Hostname: "mx.meshd.test",
		Addr:     "127.0.0.1:0",
		Policy: fakePolicy{deny: map[string]error{
			"outside@remote.test": relayDenied,
			"broken@remote.test":  errBoom,
		}},
		Sink: sink,
		Now:  func() time.Time { return time.Date(2026, 11, 25, 13, 10, 0, 0, time.UTC) },
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// wire is a raw client for transcript tests.
type wire struct {
	t    testing.TB
	conn net.Conn
	tp   *textproto.Conn
}

func dialWire(t testing.TB, addr string) *wire {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &wire{t: t, conn: c, tp: textproto.NewConn(c)}
}

func (w *wire) upgradeTLS(cfg *tls.Config) {
	w.t.Helper()
	tc := tls.Client(w.conn, cfg)
	if err := tc.Handshake(); err != nil {
		w.t.Fatalf("tls handshake: %v", err)
	}
	w.conn = tc
	w.tp = textproto.NewConn(tc)
}

// reply reads one reply and returns "code text" with multi-line text joined
// by "\n".
func (w *wire) reply() string {
	w.t.Helper()
	code, msg, err := w.tp.ReadResponse(0)
	if err != nil {
		w.t.Fatalf("read reply: %v", err)
	}
	return strings.TrimSpace(itoa3(code) + " " + msg)
}

func itoa3(c int) string {
	return string([]byte{byte('0' + c/100), byte('0' + c/10%10), byte('0' + c%10)})
}

// expect reads one reply and checks its prefix.
func (w *wire) expect(prefix string) string {
	w.t.Helper()
	r := w.reply()
	if !strings.HasPrefix(r, prefix) {
		w.t.Fatalf("reply %q, want prefix %q", r, prefix)
	}
	return r
}

func (w *wire) send(line string) {
	w.t.Helper()
	if err := w.tp.PrintfLine("%s", line); err != nil {
		w.t.Fatalf("send %q: %v", line, err)
	}
}

// cmd sends one line and checks the reply prefix.
func (w *wire) cmd(line, prefix string) string {
	w.t.Helper()
	w.send(line)
	return w.expect(prefix)
}

func (w *wire) raw(s string) {
	w.t.Helper()
	if _, err := w.conn.Write([]byte(s)); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// expectClosed reads until the server closes the connection and returns
// what it sent meanwhile.
func (w *wire) expectClosed() string {
	w.t.Helper()
	_ = w.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(w.tp.R)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		w.t.Fatalf("connection not closed; read %q", rest)
	}
	return string(rest)
}

// waitFor polls cond until it holds or 5s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.Until(t, 5*time.Second, what, cond)
}

func msg(subject string, extraHeaders ...string) string {
	return strings.Join(extraHeaders, "") + "From: a@example.test\r\nTo: b@example.test\r\nSubject: " + subject + "\r\n\r\nhello\r\n"
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
