package main_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
)

// smugglingEnds are the end-of-data look-alikes of SMTP smuggling (CVE-2023-51764 and its
// kin): a server that takes one of them for the end of DATA reads what follows as commands.
var smugglingEnds = []string{"\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r.\r", "\r.\n", "\r\n.\n"}

func showEnd(s string) string { return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s) }

// captured is one message a capturePeer received.
type captured struct {
	from  string
	rcpts []string
	data  []byte
}

// capturePeer is an SMTP server that records every byte its clients send and takes a message
// to end only at <CRLF>.<CRLF>.
type capturePeer struct {
	Addr string
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	raw  bytes.Buffer // every byte from every client, sessions one after another
	msgs []captured
}

func startCapturePeer(t *testing.T) *capturePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &capturePeer{Addr: ln.Addr().String(), ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

// tee records what the client sends.
type tee struct {
	c net.Conn
	p *capturePeer
}

func (r tee) Read(b []byte) (int, error) {
	n, err := r.c.Read(b)
	r.p.mu.Lock()
	r.p.raw.Write(b[:n])
	r.p.mu.Unlock()
	return n, err
}

func (p *capturePeer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(tee{c, p})
	say := func(s string) { _, _ = io.WriteString(c, s+"\r\n") }
	say("220 capture.test ESMTP")
	var m captured
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimRight(line, "\r\n"))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-capture.test")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m = captured{from: strings.TrimRight(line, "\r\n")[10:]}
			say("250 2.1.0 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.rcpts = append(m.rcpts, strings.TrimRight(line, "\r\n")[8:])
			say("250 2.1.5 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var data []byte
			for !bytes.HasSuffix(append([]byte("\r\n"), data...), []byte("\r\n.\r\n")) {
				b, err := br.ReadByte()
				if err != nil {
					return
				}
				data = append(data, b)
			}
			m.data = data
			p.mu.Lock()
			p.msgs = append(p.msgs, m)
			p.mu.Unlock()
			say("250 2.0.0 captured")
		case cmd == "QUIT":
			say("221 2.0.0 bye")
			return
		default:
			say("250 2.0.0 ok")
		}
	}
}

func (p *capturePeer) messages() []captured {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]captured(nil), p.msgs...)
}

func (p *capturePeer) rawBytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]byte(nil), p.raw.Bytes()...)
}

// tapProxy relays TCP to target and records what its clients send (what meshd puts on the
// wire to the Postfix smtpd behind it).
type tapProxy struct {
	Addr string
	mu   sync.Mutex
	raw  bytes.Buffer
}

func startTap(t *testing.T, target string) *tapProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tapProxy{Addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				defer up.Close()
				b := make([]byte, 32<<10)
				for {
					n, err := c.Read(b)
					if n > 0 {
						tp.mu.Lock()
						tp.raw.Write(b[:n])
						tp.mu.Unlock()
						if _, werr := up.Write(b[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() { defer wg.Done(); defer c.Close(); _, _ = io.Copy(c, up) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return tp
}

func (tp *tapProxy) rawBytes() []byte {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]byte(nil), tp.raw.Bytes()...)
}

// bareAt returns the offset of the first CR not followed by LF or LF not preceded by CR, or -1.
func bareAt(b []byte) int {
	for i, c := range b {
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') || c == '\n' && (i == 0 || b[i-1] != '\r') {
			return i
		}
	}
	return -1
}

// smuggle plays the attacker: one session that sends a message whose content holds eod
// followed by a whole forged transaction, then the real end of data. It returns the reply
// to the end of data.
func smuggle(t *testing.T, addr, subject, eod string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	reply := func() string {
		var last string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: read reply: %v", subject, err)
			}
			last = strings.TrimRight(l, "\r\n")
			if len(last) < 4 || last[3] != '-' {
				return last
			}
		}
	}
	send := func(s, want string) string {
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatal(err)
		}
		r := reply()
		if !strings.HasPrefix(r, want) {
			t.Fatalf("%s: %q answered %q, want %s", subject, showEnd(s), r, want)
		}
		return r
	}
	reply() // greeting
	send("EHLO attacker.test\r\n", "250")
	send("MAIL FROM:<sender@example.test>\r\n", "250")
	send("RCPT TO:<rcpt@far.test>\r\n", "250")
	send("DATA\r\n", "354")
	content := "From: sender@example.test\r\nSubject: " + subject + "\r\n\r\nouter" + eod +
		"MAIL FROM:<forged@evil.test>\r\nRCPT TO:<forged@far.test>\r\nDATA\r\n" +
		"From: forged@evil.test\r\nSubject: forged-" + subject + "\r\n\r\nforged\r\n.\r\n"
	if eod == "" {
		content = "From: sender@example.test\r\nSubject: " + subject + "\r\n\r\nclean\r\n.\r\n"
	}
	r := send(content, "")
	_, _ = io.WriteString(c, "QUIT\r\n")
	return r
}

var subjectRe = regexp.MustCompile(`(?m)^Subject: (\S+)\r$`)

// TestE2ESmugglingVariants relays every end-of-data variant through meshd (normalize, the
// default policy) to a capturing peer, and through meshd to a real Postfix smtpd that relays
// to a capturing peer: the bytes meshd puts on the wire never hold a bare CR or LF, and
// exactly one message arrives for each, the forged transaction inside it as content. Mail
// sent before and after is delivered exactly once.
func TestE2ESmugglingVariants(t *testing.T) {
	for _, via := range []string{"capture", "postfix"} {
		t.Run(via, func(t *testing.T) {
			final := startCapturePeer(t)
			wire := final.rawBytes // what meshd sent
			smarthost := final.Addr
			if via == "postfix" {
				pfAddr := extern.FreeAddr(t)
				extern.StartPostfix(t, pfAddr, final.Addr)
				tap := startTap(t, pfAddr)
				smarthost, wire = tap.Addr, tap.rawBytes
			}
			n := startNode(t, nodeOptions{AllowNetworks: []string{"127.0.0.0/8"}, Smarthost: smarthost})
			subjects := []string{"before"}
			smuggle(t, n.SMTP, "before", "")
			for i, eod := range smugglingEnds {
				s := fmt.Sprintf("smuggle-%d", i)
				if r := smuggle(t, n.SMTP, s, eod); !strings.HasPrefix(r, "250") {
					t.Fatalf("%s (%s): %s, want 250 (limits.bare_line_ends: normalize)", s, showEnd(eod), r)
				}
				subjects = append(subjects, s)
			}
			smuggle(t, n.SMTP, "after", "")
			subjects = append(subjects, "after")
			n.waitQueueEmpty(60 * time.Second)
			if !poll(60*time.Second, func() bool { return len(final.messages()) >= len(subjects) }) {
				t.Fatalf("%d messages arrived, want %d", len(final.messages()), len(subjects))
			}
			if via == "postfix" {
				// Postfix may still be sending a (forged) extra one: give its queue a moment.
				poll(2*time.Second, func() bool { return len(final.messages()) > len(subjects) })
			}
			count := map[string]int{}
			for _, m := range final.messages() {
				for _, r := range m.rcpts {
					if !strings.Contains(r, "rcpt@far.test") {
						t.Errorf("a message for %s arrived (forged envelope); from %s", r, m.from)
					}
				}
				if !strings.Contains(m.from, "sender@example.test") {
					t.Errorf("a message from %s arrived (forged envelope)", m.from)
				}
				if sm := subjectRe.FindSubmatch(m.data); sm != nil {
					count[string(sm[1])]++
				} else {
					t.Errorf("a message without our Subject arrived:\n%s", m.data)
				}
			}
			for i, s := range subjects {
				if count[s] != 1 {
					eod := ""
					if i > 0 && i <= len(smugglingEnds) {
						eod = showEnd(smugglingEnds[i-1])
					}
					t.Errorf("%s %s: %d copies arrived, want exactly 1", s, eod, count[s])
				}
			}
			if len(final.messages()) != len(subjects) {
				t.Errorf("%d messages arrived, want %d", len(final.messages()), len(subjects))
			}
			checkBareMetric(t, n, "normalize", len(smugglingEnds))
			raw := wire()
			if i := bareAt(raw); i >= 0 {
				t.Fatalf("meshd sent a bare CR or LF at byte %d of %d: %q", i, len(raw), raw[max(0, i-60):min(len(raw), i+60)])
			}
			t.Logf("%d messages, %d bytes from meshd on the wire to %s, no bare CR or LF", len(subjects), len(raw), via)
		})
	}
}

// TestE2ESmugglingReject: under limits.bare_line_ends: reject every variant is refused with
// 550 5.6.0 and nothing of it is relayed; the clean mail before and after arrives once.
func TestE2ESmugglingReject(t *testing.T) {
	final := startCapturePeer(t)
	n := startNode(t, nodeOptions{AllowNetworks: []string{"127.0.0.0/8"}, Smarthost: final.Addr,
		Extra: map[string]any{"limits": map[string]any{"bare_line_ends": "reject"}}})
	smuggle(t, n.SMTP, "before", "")
	for i, eod := range append(smugglingEnds, "\r\n.\rX") {
		if r := smuggle(t, n.SMTP, fmt.Sprintf("smuggle-%d", i), eod); !strings.HasPrefix(r, "550 5.6.0") {
			t.Errorf("%s: %s, want 550 5.6.0", showEnd(eod), r)
		}
	}
	smuggle(t, n.SMTP, "after", "")
	checkBareMetric(t, n, "reject", len(smugglingEnds)+1)
	n.waitQueueEmpty(60 * time.Second)
	if !poll(30*time.Second, func() bool { return len(final.messages()) >= 2 }) {
		t.Fatalf("%d messages arrived, want 2", len(final.messages()))
	}
	var got []string
	for _, m := range final.messages() {
		if sm := subjectRe.FindSubmatch(m.data); sm != nil {
			got = append(got, string(sm[1]))
		}
	}
	if strings.Join(got, " ") != "before after" {
		t.Errorf("arrived: %q, want before and after once each", got)
	}
	if i := bareAt(final.rawBytes()); i >= 0 {
		t.Errorf("bare CR or LF on the wire at %d", i)
	}
}

// checkBareMetric: the node counted want messages with bare line ends on its smtp listener
// under action.
func checkBareMetric(t *testing.T, n *meshNode, action string, want int) {
	t.Helper()
	resp, err := http.Get("http://" + n.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	line := fmt.Sprintf(`meshd_smtp_bare_line_end_messages_total{action="%s",listener="smtp"} %d`, action, want)
	if !strings.Contains(string(b), line+"\n") {
		t.Errorf("metrics lack %s", line)
	}
}
