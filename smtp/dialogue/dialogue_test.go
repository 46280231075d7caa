package dialogue

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", 40)
	tests := []struct {
		name     string
		in       string
		line     string
		complete bool
		err      error
	}{
		{"command", "MAIL FROM:<a@b>\r\nRCPT", "MAIL FROM:<a@b>\r\n", true, nil},
		{"bare LF", "NOOP\nQUIT\r\n", "NOOP\n", true, nil},
		{"too long", long + "\r\n", long[:20], false, nil},
		{"cut by EOF", "QUI", "QUI", false, io.EOF},
		{"empty", "", "", false, io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.in), 20)
			line, complete, err := ReadLine(br)
			if string(line) != tc.line || complete != tc.complete || !errors.Is(err, tc.err) {
				t.Fatalf("ReadLine(%q) = %q, %v, %v; want %q, %v, %v", tc.in, line, complete, err, tc.line, tc.complete, tc.err)
			}
		})
	}
}

func TestVerb(t *testing.T) {
	tests := []struct{ line, verb, arg string }{
		{"MAIL FROM:<a@b>\r\n", "MAIL", "FROM:<a@b>"},
		{"rcpt to:<a@b>  \r\n", "RCPT", "to:<a@b>"},
		{"DATA\r\n", "DATA", ""},
		{"data\n", "DATA", ""},
		{"bdat 10 last\r\n", "BDAT", "10 last"},
		{"STARTTLS\r\n", "STARTTLS", ""},
		{"starttls extra\r\n", "STARTTLS", ""},
		{"STARTTLSX\r\n", "STARTTLS", ""},
		{"EHLOx\r\n", "", ""},
		{"EHLO \r\n", "", ""},
		{"AB\r\n", "", ""},
		{"\r\n", "", ""},
	}
	for _, tc := range tests {
		if v, a := Verb([]byte(tc.line)); v != tc.verb || a != tc.arg {
			t.Errorf("Verb(%q) = %q, %q; want %q, %q", tc.line, v, a, tc.verb, tc.arg)
		}
	}
}

func TestIsSTARTTLS(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"STARTTLS\r\n", true}, {"starttls\n", true}, {"StartTLS", true},
		{"STARTTLS x\r\n", false}, {"STARTTLS \r\n", false}, {"STARTTL\r\n", false},
	}
	for _, tc := range tests {
		if got := IsSTARTTLS([]byte(tc.line)); got != tc.want {
			t.Errorf("IsSTARTTLS(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

func TestChunkSize(t *testing.T) {
	tests := []struct {
		arg string
		n   int64
		ok  bool
	}{
		{"10", 10, true}, {"0 LAST", 0, true}, {"7 last", 7, true}, {"4294967295", 4294967295, true},
		{"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"5 MORE", 0, false}, {"1 LAST x", 0, false},
		{"4294967296", 0, false}, {"99999999999", 0, false},
	}
	for _, tc := range tests {
		if n, ok := ChunkSize(tc.arg); n != tc.n || ok != tc.ok {
			t.Errorf("ChunkSize(%q) = %d, %v; want %d, %v", tc.arg, n, ok, tc.n, tc.ok)
		}
	}
}

func TestReadChunk(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("abcdefQUIT\r\n"))
	p := make([]byte, 64)
	var got []byte
	for left := int64(6); left > 0; {
		n, err := ReadChunk(br, p[:4], left)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:n]...)
		left -= int64(n)
	}
	if string(got) != "abcdef" {
		t.Fatalf("chunk = %q, want %q", got, "abcdef")
	}
	if line, _, _ := ReadLine(br); string(line) != "QUIT\r\n" {
		t.Fatalf("after chunk: %q, want the next command", line)
	}
}

// TestReadChunkCut: a connection that ends before the declared chunk size is an unexpected EOF,
// so that go-smtp's io.Copy of the chunk fails instead of passing a short chunk on as whole.
func TestReadChunkCut(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("only 51 octets of a chunk that declared one thousand"[:51]))
	p := make([]byte, 2000)
	var got []byte
	left := int64(1000)
	var err error
	for err == nil {
		var n int
		n, err = ReadChunk(br, p, left)
		got = append(got, p[:n]...)
		left -= int64(n)
	}
	if err != io.ErrUnexpectedEOF || len(got) != 51 {
		t.Fatalf("read %d octets, then %v; want 51, then io.ErrUnexpectedEOF", len(got), err)
	}
	// A chunk that is whole before the connection ends reads without an error.
	br = bufio.NewReader(strings.NewReader("abc"))
	if n, err := ReadChunk(br, p, 3); n != 3 || err != nil {
		t.Fatalf("whole chunk: %d, %v", n, err)
	}
}

func TestEndOfDataScan(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		n     int
		ended bool
	}{
		{"empty message", ".\r\nQUIT\r\n", 3, true},
		{"one line", "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n", 23, true},
		{"dot-stuffed", "..x\r\n.\r\n", 8, true},
		{"dot inside a line", "a.\r\nb\r\n.\r\n", 10, true},
		{"bare LF does not begin a line", "a\n.\r\nb\r\n.\r\n", 11, true},
		{"dot CR without LF", ".\rx\r\n.\r\n", 8, true},
		{"CR CR LF ends no line", "a\r\r\n.\r\n", 7, false},
		{"no end yet", "line\r\n.", 7, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e EndOfData
			n, ended := e.Scan([]byte(tc.in))
			if n != tc.n || ended != tc.ended {
				t.Fatalf("Scan(%q) = %d, %v; want %d, %v", tc.in, n, ended, tc.n, tc.ended)
			}
			// Byte by byte, the end is found at the same place.
			e.Reset()
			total := 0
			for i := 0; i < len(tc.in); i++ {
				m, end := e.Scan([]byte{tc.in[i]})
				total += m
				if end {
					ended = true
					break
				}
			}
			if total != tc.n || ended != tc.ended {
				t.Fatalf("byte by byte: %d, %v; want %d, %v", total, ended, tc.n, tc.ended)
			}
		})
	}
}

// TestEndOfDataScanRandom: on random content cut into random pieces, Scan
// ends where a plain byte-at-a-time reading of the same rules does.
func TestEndOfDataScanRandom(t *testing.T) {
	// reference: "\r\n.\r\n" after a line start (or at the very start),
	// where a line starts after CR LF only and CR CR LF starts none.
	reference := func(in []byte) int {
		st := eodBeginLine
		for i, b := range in {
			switch {
			case st == eodBeginLine && b == '.':
				st = eodDot
			case st == eodDot && b == '\r':
				st = eodDotCR
			case st == eodDotCR && b == '\n':
				return i + 1
			case (st == eodBeginLine || st == eodData) && b == '\r':
				st = eodCR
			case st == eodCR && b == '\n':
				st = eodBeginLine
			default:
				st = eodData
			}
		}
		return -1
	}
	r := rand.New(rand.NewPCG(9, 10))
	alphabet := []byte(".\r\nab")
	for range 20000 {
		in := make([]byte, r.IntN(60))
		for i := range in {
			in[i] = alphabet[r.IntN(len(alphabet))]
		}
		want := reference(in)
		var e EndOfData
		total, got := 0, -1
		for rest := in; len(rest) > 0; {
			k := 1 + r.IntN(len(rest))
			n, ended := e.Scan(rest[:k])
			total += n
			if ended {
				got = total
				break
			}
			rest = rest[k:]
		}
		if got != want {
			t.Fatalf("content %q: end at %d, reference %d", in, got, want)
		}
	}
}

// TestEndOfDataBare: on random content, ended by the real end line and cut
// into random pieces, Bare says whether the content up to its end held a
// CR not followed by LF or an LF not preceded by CR, and where the content
// ends does not change.
func TestEndOfDataBare(t *testing.T) {
	bare := func(b []byte) bool {
		for i, c := range b {
			if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') || c == '\n' && (i == 0 || b[i-1] != '\r') {
				return true
			}
		}
		return false
	}
	r := rand.New(rand.NewPCG(11, 12))
	alphabet := []byte(".\r\nab")
	for range 20000 {
		in := make([]byte, r.IntN(60))
		for i := range in {
			in[i] = alphabet[r.IntN(len(alphabet))]
		}
		in = append(in, "\r\n.\r\n"...)
		var e EndOfData
		total := 0
		for rest := in; len(rest) > 0; {
			k := 1 + r.IntN(len(rest))
			n, ended := e.Scan(rest[:k])
			total += n
			if ended {
				break
			}
			rest = rest[k:]
		}
		if want := bare(in[:total]); e.Bare != want {
			t.Fatalf("content %q (ends at %d): Bare %v, want %v", in, total, e.Bare, want)
		}
		if e.Reset(); e.Bare {
			t.Fatal("Reset kept Bare")
		}
	}
}

func TestEndOfDataRead(t *testing.T) {
	const content = "a\r\n..b\r\n.\r\n"
	br := bufio.NewReader(iotest.OneByteReader(strings.NewReader(content + "QUIT\r\n")))
	var e EndOfData
	var got []byte
	p := make([]byte, 5)
	for {
		n, ended, err := e.Read(br, p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:n]...)
		if ended {
			break
		}
	}
	if string(got) != content {
		t.Fatalf("content = %q, want %q", got, content)
	}
	if line, _, _ := ReadLine(br); string(line) != "QUIT\r\n" {
		t.Fatalf("after content: %q, want the next command", line)
	}
	if _, _, err := e.Read(bufio.NewReader(strings.NewReader("")), p); err != io.EOF {
		t.Fatalf("Read at EOF: %v, want io.EOF", err)
	}
}

func TestReplyCode(t *testing.T) {
	tests := []struct {
		line  string
		code  int
		final bool
	}{
		{"250 OK\r\n", 250, true}, {"250-PIPELINING\r\n", 250, false}, {"354", 354, true},
		{"421\r\n", 421, true}, {"25\r\n", 0, true}, {"2x0 no\r\n", 0, true}, {"", 0, true},
	}
	for _, tc := range tests {
		if code, final := ReplyCode([]byte(tc.line)); code != tc.code || final != tc.final {
			t.Errorf("ReplyCode(%q) = %d, %v; want %d, %v", tc.line, code, final, tc.code, tc.final)
		}
	}
}

func TestInsertKeywords(t *testing.T) {
	tests := []struct {
		in   string
		kws  []string
		want string
	}{
		{"250-Hello x\r\n250-PIPELINING\r\n250 SIZE 10\r\n", []string{"STARTTLS"},
			"250-Hello x\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 SIZE 10\r\n"},
		{"250 Hello x\r\n", []string{"STARTTLS"}, "250-Hello x\r\n250 STARTTLS\r\n"},
		{"250 Hello x\r\n", []string{"STARTTLS", "X-LINK2STATE"}, "250-Hello x\r\n250-STARTTLS\r\n250 X-LINK2STATE\r\n"},
		{"250-Hello x\r\n250 8BITMIME\r\n", []string{"STARTTLS", "X-LINK2STATE"},
			"250-Hello x\r\n250-STARTTLS\r\n250-X-LINK2STATE\r\n250 8BITMIME\r\n"},
	}
	for _, tc := range tests {
		in := []byte(tc.in)
		if got := string(InsertKeywords(in, tc.kws)); got != tc.want {
			t.Errorf("InsertKeywords(%q, %q) = %q, want %q", tc.in, tc.kws, got, tc.want)
		}
		if string(in) != tc.in {
			t.Errorf("InsertKeywords changed its input to %q", in)
		}
	}
}

func TestReplyBuffer(t *testing.T) {
	upper := func(send, line []byte) []byte { return append(send, bytes.ToUpper(line)...) }
	var r ReplyBuffer
	steps := []struct{ write, send string }{
		{"250-a", ""},
		{"b\r\n250 c\r", "250-AB\r\n"},
		{"\n", "250 C\r\n"},
		{"220 x\r\n221 y\r\n", "220 X\r\n221 Y\r\n"},
	}
	for _, s := range steps {
		if got := string(r.Lines([]byte(s.write), upper)); got != s.send {
			t.Fatalf("Lines(%q) sent %q, want %q", s.write, got, s.send)
		}
	}
	// A partial line too long to be a reply is not held back, unfiltered.
	long := strings.Repeat("z", MaxHeldReply+1)
	if got := string(r.Lines([]byte(long), upper)); got != long {
		t.Fatalf("long partial line: sent %d bytes, want %d unchanged", len(got), len(long))
	}
	if got := string(r.Lines([]byte("ok\n"), upper)); got != "OK\n" {
		t.Fatalf("after long line: sent %q", got)
	}
}

func TestReplyBufferDoesNotKeepCallersSlice(t *testing.T) {
	var r ReplyBuffer
	p := []byte("250 par")
	r.Lines(p, func(send, line []byte) []byte { return append(send, line...) })
	copy(p, "XXXXXXX")
	got := r.Lines([]byte("tial\r\n"), func(send, line []byte) []byte { return append(send, line...) })
	if string(got) != "250 partial\r\n" {
		t.Fatalf("got %q", got)
	}
}

// deadlineConn records the deadlines set on it.
type deadlineConn struct {
	net.Conn
	mu            sync.Mutex
	read, write   time.Time
	wrote         bytes.Buffer
	writeDeadline time.Time // the write deadline in force during Write
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read, c.write = t, t
	return nil
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = t
	return nil
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.write = t
	return nil
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeDeadline = c.write
	return c.wrote.Write(p)
}

func (c *deadlineConn) get() (read, write time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read, c.write
}

func TestDeadlines(t *testing.T) {
	conn := &deadlineConn{}
	d := NewDeadlines(conn)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 := t0.Add(time.Minute)

	_ = d.SetDeadline(t0)
	if r, w := conn.get(); !r.Equal(t0) || !w.Equal(t0) {
		t.Fatalf("SetDeadline: conn has %v, %v", r, w)
	}
	_ = d.SetWriteDeadline(t1)
	_ = conn.SetDeadline(time.Time{}) // the interposer's own, e.g. a handshake
	d.Restore()
	if r, w := conn.get(); !r.Equal(t0) || !w.Equal(t1) {
		t.Fatalf("Restore: conn has %v, %v; want %v, %v", r, w, t0, t1)
	}
	_ = d.SetReadDeadline(t1)
	_ = conn.SetReadDeadline(time.Time{})
	d.RestoreRead()
	if r, _ := conn.get(); !r.Equal(t1) {
		t.Fatalf("RestoreRead: conn has %v, want %v", r, t1)
	}

	before := time.Now()
	if err := d.Reply(conn, time.Hour, []byte("220 ready\r\n")); err != nil {
		t.Fatal(err)
	}
	if conn.wrote.String() != "220 ready\r\n" {
		t.Fatalf("Reply wrote %q", conn.wrote.String())
	}
	if conn.writeDeadline.Before(before.Add(time.Hour)) {
		t.Fatalf("Reply wrote under deadline %v, want the interposer's timeout", conn.writeDeadline)
	}
	r, w := conn.get()
	if !w.Equal(t1) {
		t.Fatalf("after Reply: write deadline %v, want go-smtp's %v back", w, t1)
	}
	if r.Before(before.Add(time.Hour)) {
		t.Fatalf("after Reply: read deadline %v, want the client given the timeout", r)
	}
}

// TestDeadlinesOnLoopback checks that a deadline go-smtp set and the
// interposer restored really bounds a read on a TCP connection.
func TestDeadlinesOnLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	d := NewDeadlines(server)
	_ = d.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if err := d.Reply(server, time.Hour, []byte("220 x\r\n")); err != nil {
		t.Fatal(err)
	}
	d.RestoreRead()
	start := time.Now()
	_, err = server.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read after RestoreRead: %v, want a timeout", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("Read timed out after %v, want go-smtp's short deadline", el)
	}
	got, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || got != "220 x\r\n" {
		t.Fatalf("client read %q, %v", got, err)
	}
}

// dotDecode decodes DATA content with the machine of go-smtp's dataReader
// (a copy of its rules, byte at a time) and returns the content and how
// many input bytes it took, -1 without an end. keepCR is the RFC 5321
// §4.5.2 reading of a line that starts ".<CR>" and goes on: only the
// period is deleted (go-smtp deletes the CR too).
func dotDecode(in []byte, keepCR bool) (out []byte, end int) {
	st := eodBeginLine
	for i, c := range in {
		switch st {
		case eodBeginLine:
			switch c {
			case '.':
				st = eodDot
				continue
			case '\r':
				st = eodCR
			default:
				st = eodData
			}
		case eodDot:
			if c == '\r' {
				st = eodDotCR
				continue
			}
			st = eodData
		case eodDotCR:
			if c == '\n' {
				return out, i + 1
			}
			if keepCR {
				out = append(out, '\r')
			}
			st = eodData
		case eodCR:
			if c == '\n' {
				st = eodBeginLine
			} else {
				st = eodData
			}
		case eodData:
			if c == '\r' {
				st = eodCR
			}
		}
		out = append(out, c)
	}
	return out, -1
}

// TestEndOfDataReadDotCR: on random content ended by the real end line,
// read through Read in random piece sizes from a reader that hands out
// random amounts, Read ends where go-smtp's machine does, and what go-smtp
// then decodes from Read's output is the RFC reading of the input (a
// leading period deleted, a CR after it kept).
func TestEndOfDataReadDotCR(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	alphabet := []byte(".\r\nab")
	cases := [][]byte{[]byte("a\r\n.\rX\r\n.\r\n"), []byte(".\r.\r\r\n.\r\n"), []byte("\r\n..\rb\r\n.\r\n")}
	for range 20000 {
		in := make([]byte, r.IntN(50))
		for i := range in {
			in[i] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, append(in, "\r\n.\r\n"...))
	}
	for _, in := range cases {
		wantOut, wantEnd := dotDecode(in, true)
		if wantEnd < 0 {
			continue // "\r\r\n" starts no line: go-smtp finds no end in it either
		}
		var src io.Reader = bytes.NewReader(append(append([]byte(nil), in...), "QUIT\r\n"...))
		if r.IntN(2) == 0 {
			src = iotest.OneByteReader(src)
		} else {
			src = iotest.HalfReader(src)
		}
		br := bufio.NewReaderSize(src, 16)
		var e EndOfData
		var got []byte
		for {
			p := make([]byte, 1+r.IntN(8))
			n, ended, err := e.Read(br, p)
			if err != nil {
				t.Fatalf("content %q: Read: %v", in, err)
			}
			got = append(got, p[:n]...)
			if ended {
				break
			}
		}
		rest, _ := io.ReadAll(br)
		consumed := len(in) + len("QUIT\r\n") - len(rest)
		if consumed != wantEnd {
			t.Fatalf("content %q: Read took %d bytes, go-smtp's end is at %d", in, consumed, wantEnd)
		}
		if dec, end := dotDecode(got, false); end != len(got) || !bytes.Equal(dec, wantOut) {
			t.Fatalf("content %q: Read handed on %q, which go-smtp reads as %q (end %d of %d); want %q", in, got, dec, end, len(got), wantOut)
		}
	}
}
