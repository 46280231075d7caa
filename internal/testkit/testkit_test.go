package testkit

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshd/meshd/pki"
)

// fakeT records a failure instead of ending the test, so that the kit's
// failure messages can be checked.
type fakeT struct {
	testing.TB
	failed atomic.Bool
	msg    atomic.Value
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed.Store(true)
	f.msg.Store(fmt.Sprintf(format, args...))
}
func (f *fakeT) Errorf(format string, args ...any) { f.Fatalf(format, args...) }
func (f *fakeT) Name() string                      { return "TestX" }

func TestEventually(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		n := 0
		took := Eventually(t, time.Minute, "third call", func() error {
			if n++; n < 3 {
				return errors.New("not yet")
			}
			return nil
		})
		if n != 3 || took != time.Since(start) {
			t.Fatalf("calls %d, took %v", n, took)
		}
		ft := &fakeT{TB: t}
		Eventually(ft, time.Second, "the queue drains", func() error { return errors.New("2 messages left") })
		msg, _ := ft.msg.Load().(string)
		if !ft.failed.Load() || !strings.Contains(msg, "the queue drains") || !strings.Contains(msg, "2 messages left") {
			t.Fatalf("failure %q", msg)
		}
		// The deadline is kept: the last poll is at the deadline, not a tick after.
		if got := time.Since(start); got > time.Second+3*time.Millisecond {
			t.Fatalf("gave up after %v", got)
		}
	})
}

// EventuallyEvery polls at its tick from the first pause on, without the
// backoff: a condition that comes true at 50 ms is seen at the next tick.
func TestEventuallyEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		at := time.Now().Add(50 * time.Millisecond)
		calls := 0
		took := EventuallyEvery(t, 20*time.Millisecond, time.Second, "time passes", func() error {
			calls++
			if time.Now().Before(at) {
				return errors.New("not yet")
			}
			return nil
		})
		if took != 60*time.Millisecond || calls != 4 {
			t.Fatalf("took %v in %d calls, want 60ms in 4 (0, 20, 40, 60 ms)", took, calls)
		}
	})
}

func TestUntilAndPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		at := time.Now().Add(300 * time.Millisecond)
		Until(t, time.Second, "time passes", func() bool { return time.Now().After(at) })
		if Poll(time.Second, func() bool { return false }) {
			t.Fatal("Poll of a false condition held")
		}
		if !Poll(0, func() bool { return true }) {
			t.Fatal("Poll of a true condition failed")
		}
		ft := &fakeT{TB: t}
		Until(ft, time.Second, "never", func() bool { return false })
		if msg, _ := ft.msg.Load().(string); !strings.Contains(msg, "never: not within 1s") {
			t.Fatalf("failure %q", msg)
		}
	})
}

func TestGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "out.golden")
	*update = true
	Golden(t, path, []byte("one\n"))
	*update = false
	Golden(t, path, []byte("one\n"))
	ft := &fakeT{TB: t}
	Golden(ft, path, []byte("two\n"))
	if msg, _ := ft.msg.Load().(string); !ft.failed.Load() || !strings.Contains(msg, "two") || !strings.Contains(msg, "-update") {
		t.Fatalf("failure %q", msg)
	}
	ft = &fakeT{TB: t}
	Golden(ft, filepath.Join(t.TempDir(), "missing"), nil)
	if !ft.failed.Load() {
		t.Fatal("a missing golden file passed")
	}
	if b, _ := os.ReadFile(path); string(b) != "one\n" {
		t.Fatalf("golden file %q", b)
	}
}

// TestNodeCertificates: two nodes of one test organisation handshake with
// mutual TLS through pki's own configurations and see each other's identity.
func TestNodeCertificates(t *testing.T) {
	ca := NewCA(t)
	a, b := ca.Node(t, "a1", "rga"), ca.Node(t, "b1", "rgb")
	if got, err := pki.ParseIdentity(a.Cert.Leaf); err != nil || got != a.ID {
		t.Fatalf("identity %v, %v", got, err)
	}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	srv := tls.Server(c1, a.ServerTLS())
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	cli := tls.Client(c2, b.ClientTLS())
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st := srv.ConnectionState()
	if id, ok := pki.PeerIdentity(&st); !ok || id != b.ID {
		t.Fatalf("server saw %v %v", id, ok)
	}
	// Another organisation's node is refused.
	other := NewCA(t).Node(t, "b1", "rgb")
	c3, c4 := net.Pipe()
	defer c3.Close()
	defer c4.Close()
	go func() { _ = tls.Server(c3, a.ServerTLS()).Handshake(); c3.Close() }()
	if err := tls.Client(c4, other.ClientTLS()).Handshake(); err == nil {
		t.Fatal("a foreign organisation's node completed the handshake")
	}
}

func TestHostCertificate(t *testing.T) {
	h := Localhost(t)
	ln := listen(t)
	done := make(chan struct{})
	defer func() { ln.Close(); <-done }()
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = tls.Server(c, h.ServerTLS()).Handshake()
			c.Close()
		}
	}()
	for _, name := range []string{"localhost", "127.0.0.1"} {
		cfg := h.ClientTLS()
		cfg.ServerName = name
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.Close()
	}
	if err := h.Leaf.VerifyHostname("mx.other.test"); err == nil {
		t.Fatal("certificate valid for a name it was not issued for")
	}
}

func dialPeer(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func TestScript(t *testing.T) {
	s := NewScript(t,
		Step{"", "220 x ESMTP"},
		Step{"EHLO", Multiline(250, "x", "PIPELINING")},
		Step{AnyLine, "354 go"},
		Step{Data, "250 ok"},
	)
	c, br := dialPeer(t, s.Addr)
	read := func(want string) {
		t.Helper()
		var got string
		for !strings.HasSuffix(got, want) {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("read %q: %v", got, err)
			}
			got += line
		}
	}
	read("220 x ESMTP\r\n")
	io.WriteString(c, "EHLO me\r\n")
	read("250-x\r\n250 PIPELINING\r\n")
	io.WriteString(c, "DATA\r\n")
	read("354 go\r\n")
	io.WriteString(c, "a\n.\nb\r\n.\r\n")
	read("250 ok\r\n")
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	got := s.Received()
	if strings.Join(got, "|") != "EHLO me\r\n|DATA\r\n|a\n.\nb\r\n.\r\n" {
		t.Fatalf("received %q", got)
	}
	if _, err := br.ReadString('\n'); err != io.EOF {
		t.Fatalf("connection not closed at the script's end: %v", err)
	}
}

func TestScriptReportsUnexpected(t *testing.T) {
	s := NewScript(t, Step{"", "220 x"}, Step{"EHLO", "250 x"})
	c, _ := dialPeer(t, s.Addr)
	io.WriteString(c, "HELO me\r\n")
	if err := s.Wait(); err == nil || !strings.Contains(err.Error(), `"HELO me"`) || !strings.Contains(err.Error(), "EHLO") {
		t.Fatalf("err = %v", err)
	}
}

func TestSink(t *testing.T) {
	for _, lmtp := range []bool{false, true} {
		s := NewSink(t, SinkOptions{LMTP: lmtp})
		c, br := dialPeer(t, s.Addr)
		io.WriteString(c, "EHLO me\r\nMAIL FROM:<a@x.test> BODY=8BITMIME\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n")
		var replies []string
		for len(replies) < 6 {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			replies = append(replies, strings.TrimRight(line, "\r\n"))
		}
		body := "x\n.\ny\r\n.\r\n"
		io.WriteString(c, body+"QUIT\r\n")
		rest, _ := io.ReadAll(br)
		want := 1
		if lmtp {
			want = 2
		}
		if n := strings.Count(string(rest), "250 2.0.0"); n != want || !strings.HasSuffix(string(rest), "221 2.0.0 bye\r\n") {
			t.Fatalf("lmtp %v: after DATA %q", lmtp, rest)
		}
		m := s.Messages()
		if len(m) != 1 || m[0].From != "<a@x.test> BODY=8BITMIME" || len(m[0].Rcpts) != 2 || string(m[0].Data) != body {
			t.Fatalf("messages %+v", m)
		}
		if raw := string(s.Raw()); !strings.HasPrefix(raw, "EHLO me\r\n") || !strings.HasSuffix(raw, "QUIT\r\n") {
			t.Fatalf("raw %q", raw)
		}
		if replies[0] != "220 sink.test ESMTP" && replies[0] != "220 sink.test LMTP" || replies[1] != "250-sink.test" || replies[2] != "250 8BITMIME" {
			t.Fatalf("replies %q", replies)
		}
	}
}

func TestPipeListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewPipeListener()
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "220 pipe\r\n")
			c.Close()
		}()
		c, err := l.Dial(t.Context(), "tcp", "anything:25")
		if err != nil {
			t.Fatal(err)
		}
		// A deadline on the bubble's clock: the read gives up after 1h of fake time.
		c.SetReadDeadline(time.Now().Add(time.Hour))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "220 pipe\r\n" {
			t.Fatalf("read %q, %v", line, err)
		}
		c.Close()
		l.Close()
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
		if _, err := l.Dial(t.Context(), "tcp", "x"); err == nil {
			t.Fatal("Dial after Close succeeded")
		}
	})
}

// TestPeersOnPipes: the scripted peer and the sink serve a PipeListener,
// so a client under test can meet them inside a synctest bubble, where a
// session deadline is on the bubble's clock.
func TestPeersOnPipes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewPipeListener()
		s := NewScriptOn(t, l, Step{Reply: "220 pipe"}, Step{Expect: "QUIT", Reply: "221 bye"})
		c, err := l.Dial(t.Context(), "tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		if line, _ := br.ReadString('\n'); line != "220 pipe\r\n" {
			t.Fatalf("greeting %q", line)
		}
		io.WriteString(c, "QUIT\r\n")
		if line, _ := br.ReadString('\n'); line != "221 bye\r\n" {
			t.Fatalf("reply %q", line)
		}
		if err := s.Wait(); err != nil {
			t.Fatal(err)
		}
		c.Close()

		sl := NewPipeListener()
		sink := NewSink(t, SinkOptions{Listener: sl})
		c, err = sl.Dial(t.Context(), "tcp", sink.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br = bufio.NewReader(c)
		if line, _ := br.ReadString('\n'); line != "220 sink.test ESMTP\r\n" {
			t.Fatalf("greeting %q", line)
		}
		// A client that goes quiet is cut at the session timeout, on the bubble's clock.
		start := time.Now()
		if _, err := br.ReadString('\n'); err == nil {
			t.Fatal("a silent session was kept")
		}
		if took := time.Since(start); took != sessionTimeout {
			t.Fatalf("silent session cut after %v, want %v", took, sessionTimeout)
		}
	})
}
