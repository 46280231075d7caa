package testkit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// sessionTimeout bounds a fake peer's session: a client that stops
// talking fails the test instead of hanging it.
const sessionTimeout = 30 * time.Second

// What a Step reads besides a line with a given prefix.
const (
	// AnyLine reads one line, whatever it says.
	AnyLine = "\x00any line"
	// Data reads message content up to and including <CRLF>.<CRLF>.
	Data = "\x00data"
)

// Step is one turn of a Script: read what Expect says, then write Reply.
type Step struct {
	// Expect is the prefix of the line to read (AnyLine: any line; Data:
	// a message; "": read nothing, as before the greeting).
	Expect string
	// Reply is written after the read ("": nothing). Its lines may be
	// separated by CRLF; a final CRLF is added when missing.
	Reply string
}

// Script is a fake SMTP peer on 127.0.0.1 that accepts one connection,
// plays its steps on it, records what the client sent and closes the
// connection when the steps are done (a peer that "drops" the client
// there).
type Script struct {
	Addr string

	ln   net.Listener
	done chan error
	wg   sync.WaitGroup

	mu   sync.Mutex
	conn net.Conn
	got  []string
}

// NewScript starts a Script on 127.0.0.1; t.Cleanup stops it.
func NewScript(t testing.TB, steps ...Step) *Script {
	t.Helper()
	return NewScriptOn(t, listen(t), steps...)
}

// NewScriptOn starts a Script on ln (a PipeListener inside a synctest
// bubble); t.Cleanup stops it and closes ln.
func NewScriptOn(t testing.TB, ln net.Listener, steps ...Step) *Script {
	t.Helper()
	s := &Script{Addr: ln.Addr().String(), ln: ln, done: make(chan error, 1)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.done <- s.serve(steps)
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		if s.conn != nil {
			_ = s.conn.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *Script) serve(steps []Step) error {
	c, err := s.ln.Accept()
	if err != nil {
		return err
	}
	_ = s.ln.Close() // one session only
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(sessionTimeout))
	br := bufio.NewReader(c)
	for i, st := range steps {
		switch st.Expect {
		case "":
		case Data:
			data, err := readData(br)
			s.record(string(data))
			if err != nil {
				return fmt.Errorf("testkit: step %d: read message: %w", i+1, err)
			}
		default:
			line, err := br.ReadString('\n')
			s.record(line)
			if err != nil {
				return fmt.Errorf("testkit: step %d: read %q: %w (want %q)", i+1, line, err, st.Expect)
			}
			if st.Expect != AnyLine && !strings.HasPrefix(line, st.Expect) {
				return fmt.Errorf("testkit: step %d: read %q, want %q", i+1, strings.TrimRight(line, "\r\n"), st.Expect)
			}
		}
		if st.Reply != "" {
			if _, err := io.WriteString(c, crlf(st.Reply)); err != nil {
				return fmt.Errorf("testkit: step %d: write: %w", i+1, err)
			}
		}
	}
	return nil
}

func (s *Script) record(v string) {
	s.mu.Lock()
	s.got = append(s.got, v)
	s.mu.Unlock()
}

// Wait blocks until the script has run to its end (nil) or failed (what
// the peer read instead of what it expected).
func (s *Script) Wait() error { return <-s.done }

// Received is what the client sent, one entry per step that read: lines
// with their line ends, messages with their end line.
func (s *Script) Received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// SinkOptions shape a Sink's answers.
type SinkOptions struct {
	Name       string   // host name in the greeting and EHLO (default sink.test)
	LMTP       bool     // one reply per recipient after the message
	Extensions []string // EHLO keywords (default 8BITMIME)
	// Listener, when set, is served instead of a new one on 127.0.0.1
	// (a PipeListener inside a synctest bubble); Cleanup closes it.
	Listener net.Listener
}

// Message is one message a Sink took.
type Message struct {
	From  string   // what followed "MAIL FROM:" (path and parameters)
	Rcpts []string // what followed each "RCPT TO:"
	Data  []byte   // the content as sent, dot-stuffed, with its end line
}

// Sink is a fake SMTP (or LMTP) server on 127.0.0.1 that takes every
// message, ends one only at <CRLF>.<CRLF> and records every byte every
// client sends: the far side of a test of what a client puts on the wire.
type Sink struct {
	Addr string

	opt SinkOptions
	ln  net.Listener
	wg  sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
	raw   bytes.Buffer
	msgs  []Message
}

// NewSink starts a Sink; t.Cleanup stops it and its sessions.
func NewSink(t testing.TB, opt SinkOptions) *Sink {
	t.Helper()
	if opt.Name == "" {
		opt.Name = "sink.test"
	}
	if opt.Extensions == nil {
		opt.Extensions = []string{"8BITMIME"}
	}
	ln := opt.Listener
	if ln == nil {
		ln = listen(t)
	}
	s := &Sink{Addr: ln.Addr().String(), opt: opt, ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// tee records what a client sends.
type tee struct {
	c net.Conn
	s *Sink
}

func (r tee) Read(b []byte) (int, error) {
	n, err := r.c.Read(b)
	r.s.mu.Lock()
	r.s.raw.Write(b[:n])
	r.s.mu.Unlock()
	return n, err
}

func (s *Sink) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(sessionTimeout))
	br := bufio.NewReader(tee{c, s})
	say := func(r string) { _, _ = io.WriteString(c, crlf(r)) }
	proto := "ESMTP"
	if s.opt.LMTP {
		proto = "LMTP"
	}
	say("220 " + s.opt.Name + " " + proto)
	var m Message
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd := strings.ToUpper(line)
		switch {
		case hasVerb(cmd, "EHLO"), hasVerb(cmd, "LHLO"):
			say(Multiline(250, append([]string{s.opt.Name}, s.opt.Extensions...)...))
		case hasVerb(cmd, "HELO"):
			say("250 " + s.opt.Name)
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m = Message{From: line[len("MAIL FROM:"):]}
			say("250 2.1.0 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.Rcpts = append(m.Rcpts, line[len("RCPT TO:"):])
			say("250 2.1.5 ok")
		case cmd == "DATA":
			say("354 go ahead")
			data, err := readData(br)
			if err != nil {
				return
			}
			m.Data = data
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			n := 1
			if s.opt.LMTP {
				n = len(m.Rcpts)
			}
			for range n {
				say("250 2.0.0 taken")
			}
			m = Message{}
		case cmd == "QUIT":
			say("221 2.0.0 bye")
			return
		default:
			say("250 2.0.0 ok")
		}
	}
}

// Messages are the messages taken so far, in order.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Raw is every byte clients sent, sessions one after another.
func (s *Sink) Raw() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.raw.Bytes())
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return ln
}

// hasVerb: the command line cmd (upper case) is verb alone or verb and
// an argument.
func hasVerb(cmd, verb string) bool {
	return cmd == verb || strings.HasPrefix(cmd, verb+" ")
}

// readData reads message content up to <CRLF>.<CRLF> (an empty message
// is its end line alone) and nothing else: a bare LF or CR before a dot
// does not end it, which is what a smuggling test needs to see.
func readData(br *bufio.Reader) ([]byte, error) {
	var data []byte
	for !bytes.HasSuffix(append([]byte("\r\n"), data...), []byte("\r\n.\r\n")) {
		b, err := br.ReadByte()
		if err != nil {
			return data, err
		}
		data = append(data, b)
	}
	return data, nil
}

// Multiline is an SMTP reply of several lines (RFC 5321 section 4.2.1):
// "250-a", "250-b", "250 c".
func Multiline(code int, lines ...string) string {
	var b strings.Builder
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(&b, "%d%s%s\r\n", code, sep, l)
	}
	return b.String()
}

func crlf(r string) string {
	if strings.HasSuffix(r, "\n") {
		return r
	}
	return r + "\r\n"
}
