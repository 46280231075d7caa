package dialogue

import (
	"bytes"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// events is the order in which the client's bytes left the follower:
// to go-smtp (Read) or to the test extension (Command).
type events struct {
	mu       sync.Mutex
	log      []byte // every byte, in order
	handled  []string
	messages []string
	resets   int
}

func (e *events) add(b []byte, handled bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, b...)
	if handled {
		e.handled = append(e.handled, string(b))
	}
}

func (e *events) snapshot() (log []byte, handled, messages []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]byte(nil), e.log...), append([]string(nil), e.handled...), append([]string(nil), e.messages...)
}

// testExt answers every line that starts with "XTEST" and announces XTEST.
type testExt struct{ ev *events }

func (x testExt) Open(c *Conn) Handler { return &testHandler{ev: x.ev, c: c} }

type testHandler struct {
	ev *events
	c  *Conn
}

func (h *testHandler) Command(cmd Command) (bool, error) {
	if !bytes.HasPrefix(cmd.Line, []byte("XTEST")) {
		return false, nil
	}
	h.ev.add(cmd.Line, true)
	if bytes.HasPrefix(cmd.Line, []byte("XTEST DROP")) {
		return true, h.c.Drop("554 5.0.0 dropped", "421 4.7.0 closing")
	}
	return true, h.c.Reply("250 2.0.0 xtest")
}

func (h *testHandler) Keywords() []string { return []string{"XTEST"} }
func (h *testHandler) Reset() {
	h.ev.mu.Lock()
	h.ev.resets++
	h.ev.mu.Unlock()
}

// tap is what go-smtp reads through: it records every byte it is given.
type tap struct {
	*Conn
	ev *events
}

func (t tap) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	t.ev.add(p[:n], false)
	return n, err
}

type chanListener struct {
	conns chan net.Conn
	addr  net.Addr
	once  sync.Once
	done  chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *chanListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }

type backend struct{ ev *events }

func (b backend) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return &session{ev: b.ev}, nil }

type session struct{ ev *events }

func (*session) Mail(string, *gosmtp.MailOptions) error { return nil }
func (*session) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (*session) Reset()                                 {}
func (*session) Logout() error                          { return nil }
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.ev.mu.Lock()
	s.ev.messages = append(s.ev.messages, string(b))
	s.ev.mu.Unlock()
	return nil
}

// followerEnv is a real go-smtp server whose every connection is a
// follower (Conn) running testExt, on loopback.
type followerEnv struct {
	ln net.Listener
	cl *chanListener
	gs *gosmtp.Server
}

func newFollowerEnv(t testing.TB) *followerEnv {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &followerEnv{ln: ln, cl: &chanListener{conns: make(chan net.Conn), addr: ln.Addr(), done: make(chan struct{})}}
	gs := gosmtp.NewServer(backend{})
	gs.Domain = "follower.test"
	gs.ReadTimeout, gs.WriteTimeout = 5*time.Second, 5*time.Second
	gs.MaxLineLength = 2000
	gs.AllowInsecureAuth = true
	gs.ErrorLog = log.New(io.Discard, "", 0)
	e.gs = gs
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(e.cl) }()
	t.Cleanup(func() { _ = gs.Close(); _ = ln.Close(); <-served })
	return e
}

// run feeds in to one session and returns what left the follower, when
// the server side has closed.
func (e *followerEnv) run(t testing.TB, in []byte) *events {
	ev := &events{}
	e.gs.Backend = backend{ev: ev}
	cli, err := net.Dial("tcp", e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	raw, err := e.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	cfg := &Config{CommandTimeout: 5 * time.Second, Extensions: []Extension{testExt{ev}},
		OnClose: func(*Conn) { close(closed) }}
	c := New(raw, cfg)
	e.cl.conns <- tap{Conn: c, ev: ev}
	go func() { _, _ = io.Copy(io.Discard, cli) }()
	_ = cli.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = cli.Write(in)
	_ = cli.(*net.TCPConn).CloseWrite()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("session still open 10s after the input ended")
	}
	return ev
}

// checkConserved: every byte that left the follower, in order, is the
// client's input (or a prefix of it): nothing lost, added or reordered,
// but for the period of a content line ".CR" + not LF, which
// EndOfData.Read deletes (RFC 5321 §4.5.2) before go-smtp sees it.
func checkConserved(t testing.TB, in []byte, ev *events) {
	t.Helper()
	got, _, _ := ev.snapshot()
	i := 0
	for j := 0; j < len(got); j++ {
		if i+1 < len(in) && in[i] == '.' && in[i+1] == '\r' && got[j] == '\r' && (i+2 >= len(in) || in[i+2] != '\n') {
			i++
		}
		if i >= len(in) || in[i] != got[j] {
			t.Fatalf("follower handed on %q, not the input %q (byte %d)", got, in, j)
		}
		i++
	}
}

func TestFollowerExtensionAndContent(t *testing.T) {
	e := newFollowerEnv(t)
	body := "Subject: x\r\n\r\nXTEST in DATA\r\n.\r\n"
	chunk := "XTEST in BDAT\r\n"
	in := "EHLO c.test\r\nXTEST one\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n" + body +
		"XTEST two\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT " + itoa(len(chunk)) + " LAST\r\n" + chunk +
		"XTEST three\r\nBDAT 15 LAST\r\n" + chunk + "XTEST four\r\nQUIT\r\nXTEST after quit\r\n"
	ev := e.run(t, []byte(in))
	checkConserved(t, []byte(in), ev)
	_, handled, msgs := ev.snapshot()
	want := []string{"XTEST one\r\n", "XTEST two\r\n", "XTEST three\r\n", "XTEST four\r\n"}
	if strings.Join(handled, "|") != strings.Join(want, "|") {
		t.Fatalf("extension handled %q, want %q (content and what follows QUIT pass)", handled, want)
	}
	if len(msgs) != 2 || !strings.Contains(msgs[0], "XTEST in DATA") || msgs[1] != chunk {
		t.Fatalf("messages %q", msgs)
	}
}

// TestFollowerResetsExtensions: EHLO, HELO and RSET reset the extension's
// session state (RFC 5321 §4.1.1.1, §4.1.1.5); other commands and lines
// inside content do not.
func TestFollowerResetsExtensions(t *testing.T) {
	e := newFollowerEnv(t)
	in := "EHLO c.test\r\nNOOP\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nRSET\r\nEHLO x\r\n.\r\n" +
		"RSET\r\nHELO c.test\r\nQUIT\r\n"
	ev := e.run(t, []byte(in))
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.resets != 3 {
		t.Fatalf("%d resets, want 3 (EHLO, RSET, HELO outside content)", ev.resets)
	}
}

func TestFollowerDrop(t *testing.T) {
	e := newFollowerEnv(t)
	in := "EHLO c.test\r\nXTEST DROP\r\nNOOP\r\n"
	ev := e.run(t, []byte(in))
	got, handled, _ := ev.snapshot()
	if string(got) != "EHLO c.test\r\nXTEST DROP\r\n" || len(handled) != 1 {
		t.Fatalf("after Drop go-smtp read %q (handled %q), want nothing past the dropped line", got, handled)
	}
}

// FuzzFollower feeds arbitrary client bytes to a real go-smtp behind the
// follower with an extension: the session ends, and what left the
// follower is the input, in order.
func FuzzFollower(f *testing.F) {
	for _, s := range []string{
		"EHLO c\r\nXTEST a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nXTEST\r\n.\r\nQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 7\r\nXTEST\r\nBDAT 3 LAST\r\nabcXTEST z\r\n",
		"BDAT 9 LAST\r\nXTEST a\r\nXTEST b\r\n",
		"EHLO c\r\nAUTH PLAIN\r\nXTEST\r\n*\r\nXTEST x\r\n",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\rXTEST\r\n.\r\nXTEST\r\n",
		"XTEST DROP\r\nQUIT\r\n",
		"EHLO " + strings.Repeat("x", 20000) + "\r\nXTEST\r\n",
	} {
		f.Add([]byte(s))
	}
	e := newFollowerEnv(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		checkConserved(t, in, e.run(t, in))
	})
}

func itoa(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		if n /= 10; n == 0 {
			return string(b)
		}
	}
}
