package smtp

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawRecorder is an SMTP/LMTP server that records every byte the client
// sends and cuts messages at <CRLF>.<CRLF> only.
type rawRecorder struct {
	addr string
	lmtp bool
	mu   sync.Mutex
	raw  bytes.Buffer
	msgs [][]byte
}

func startRawRecorder(t *testing.T, lmtp bool) *rawRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rawRecorder{addr: ln.Addr().String(), lmtp: lmtp}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); r.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return r
}

type recordingReader struct {
	c io.Reader
	r *rawRecorder
}

func (rr recordingReader) Read(b []byte) (int, error) {
	n, err := rr.c.Read(b)
	rr.r.mu.Lock()
	rr.r.raw.Write(b[:n])
	rr.r.mu.Unlock()
	return n, err
}

func (r *rawRecorder) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(recordingReader{c, r})
	say := func(s string) { _, _ = io.WriteString(c, s+"\r\n") }
	say("220 recorder.test")
	rcpts := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO", "LHLO":
			say("250 recorder.test")
		case "RCPT":
			rcpts++
			say("250 2.1.5 ok")
		case "DATA":
			say("354 go")
			var data []byte
			for !bytes.HasSuffix(append([]byte("\r\n"), data...), []byte("\r\n.\r\n")) {
				b, err := br.ReadByte()
				if err != nil {
					return
				}
				data = append(data, b)
			}
			r.mu.Lock()
			r.msgs = append(r.msgs, data)
			r.mu.Unlock()
			n := 1
			if r.lmtp {
				n = rcpts
			}
			for range n {
				say("250 2.0.0 ok")
			}
			rcpts = 0
		case "QUIT":
			say("221 bye")
			return
		default:
			say("250 2.0.0 ok")
		}
	}
}

// TestClientSendsNoBareLineEnds: whatever body the queue holds (here every
// end-of-data look-alike, and a bare CR before a dot line), the client, over
// SMTP and LMTP, sends only CRLF line ends and one message per send, whose
// content read back is the body with its line ends normalised.
func TestClientSendsNoBareLineEnds(t *testing.T) {
	for _, lmtp := range []bool{false, true} {
		rec := startRawRecorder(t, lmtp)
		c := newTestClient(t, ClientConfig{LMTP: lmtp})
		var bodies [][]byte
		for _, eod := range append(smugglingEnds, "\r\n.\rX", "\r\r\n.\r\n") {
			bodies = append(bodies, []byte("Subject: s\r\n\r\nouter"+eod+"MAIL FROM:<f@evil.test>\r\nRCPT TO:<v@x.test>\r\nDATA\r\nforged\r\n.\r\nQUIT\r\n"))
		}
		for _, b := range bodies {
			res, err := send(t, c, rec.addr, Outgoing{From: "a@example.test", Rcpts: []Rcpt{{Addr: "b@remote.test"}}, Body: b})
			if err != nil || len(res) != 1 || !res[0].OK() {
				t.Fatalf("lmtp %v: send %q: %+v, %v", lmtp, b, res, err)
			}
		}
		rec.mu.Lock()
		raw, msgs := rec.raw.Bytes(), rec.msgs
		rec.mu.Unlock()
		if hasBareLineEnd(raw) {
			t.Fatalf("lmtp %v: bare CR or LF on the wire: %q", lmtp, raw)
		}
		if len(msgs) != len(bodies) {
			t.Fatalf("lmtp %v: %d messages arrived for %d sent", lmtp, len(msgs), len(bodies))
		}
		for i, m := range msgs {
			got := bytes.ReplaceAll(bytes.TrimSuffix(m, []byte(".\r\n")), []byte("\r\n.."), []byte("\r\n."))
			if want := normalizeLineEnds(bodies[i]); !bytes.Equal(got, want) {
				t.Errorf("lmtp %v: message %d arrived as %q, want %q", lmtp, i, got, want)
			}
		}
	}
}
