package smtp

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

// testMTA is a plain go-smtp server standing in for a remote MTA, smarthost,
// LMTP server or peer, with scripted replies.
type testMTA struct {
	gs   *gosmtp.Server
	ln   net.Listener
	addr string

	mu        sync.Mutex
	accepts   int
	conns     []net.Conn
	msgs      []mtaMsg
	dataCalls int
	resets    int

	// Scripted replies (set before use).
	mailErr  error
	rcptErr  map[string]error // by recipient
	dataErr  error
	lmtpData map[string]error // per-recipient LMTP DATA replies
}

type mtaMsg struct {
	from     string
	mailOpts gosmtp.MailOptions
	rcpts    []string
	rcptOpts []gosmtp.RcptOptions
	body     string
	tls      bool
}

type countingListener struct {
	net.Listener
	m *testMTA
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.m.mu.Lock()
		l.m.accepts++
		l.m.conns = append(l.m.conns, c)
		l.m.mu.Unlock()
	}
	return c, err
}

func startMTA(t testing.TB, mod func(*gosmtp.Server, *testMTA)) *testMTA {
	t.Helper()
	m := &testMTA{rcptErr: map[string]error{}}
	gs := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &mtaSession{m: m, tls: isTLS}, nil
	}))
	gs.Domain = "remote.test"
	gs.MaxMessageBytes = 1 << 20
	gs.MaxRecipients = 50
	gs.ErrorLog = errorLog{discardLogger()}
	m.gs = gs
	if mod != nil {
		mod(gs, m)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.ln, m.addr = countingListener{l, m}, l.Addr().String()
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(m.ln) }()
	t.Cleanup(func() {
		_ = l.Close()
		<-served
		m.dropConns()
		_ = gs.Shutdown(context.Background())
	})
	return m
}

// dropConns cuts every connection from the server side.
func (m *testMTA) dropConns() {
	m.mu.Lock()
	conns := m.conns
	m.conns = nil
	m.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (m *testMTA) stats() (accepts, dataCalls int, msgs []mtaMsg) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.accepts, m.dataCalls, append([]mtaMsg(nil), m.msgs...)
}

type mtaSession struct {
	m   *testMTA
	tls bool
	cur mtaMsg
}

func (s *mtaSession) Reset() {
	s.cur = mtaMsg{}
	s.m.mu.Lock()
	s.m.resets++
	s.m.mu.Unlock()
}
func (s *mtaSession) Logout() error { return nil }

func (s *mtaSession) Mail(from string, opts *gosmtp.MailOptions) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.m.mailErr != nil {
		return s.m.mailErr
	}
	s.cur = mtaMsg{from: from, mailOpts: *opts, tls: s.tls}
	return nil
}

func (s *mtaSession) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if err := s.m.rcptErr[to]; err != nil {
		return err
	}
	s.cur.rcpts = append(s.cur.rcpts, to)
	s.cur.rcptOpts = append(s.cur.rcptOpts, *opts)
	return nil
}

func (s *mtaSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.dataCalls++
	if s.m.dataErr != nil {
		return s.m.dataErr
	}
	s.cur.body = string(b)
	s.m.msgs = append(s.m.msgs, s.cur)
	return nil
}

func (s *mtaSession) LMTPData(r io.Reader, status gosmtp.StatusCollector) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.dataCalls++
	s.cur.body = string(b)
	s.m.msgs = append(s.m.msgs, s.cur)
	for _, rc := range s.cur.rcpts {
		status.SetStatus(rc, s.m.lmtpData[rc])
	}
	return nil
}
