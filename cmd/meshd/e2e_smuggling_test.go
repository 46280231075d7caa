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
	"github.com/meshd/meshd/internal/testkit"
)

// smugglingEnds are the end-of-data look-alikes of SMTP smuggling (CVE-2023-51764 and its
// kin): a server that takes one of them for the end of DATA reads what follows as commands.
var smugglingEnds = []string{"\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r.\r", "\r.\n", "\r\n.\n"}

func showEnd(s string) string { return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s) }

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
			final := testkit.NewSink(t, testkit.SinkOptions{Name: "capture.test"})
			wire := final.Raw // what meshd sent
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
			if !testkit.Poll(60*time.Second, func() bool { return len(final.Messages()) >= len(subjects) }) {
				t.Fatalf("%d messages arrived, want %d", len(final.Messages()), len(subjects))
			}
			if via == "postfix" {
				// Postfix may still be sending a (forged) extra one: give its queue a moment.
				testkit.Poll(2*time.Second, func() bool { return len(final.Messages()) > len(subjects) })
			}
			count := map[string]int{}
			for _, m := range final.Messages() {
				for _, r := range m.Rcpts {
					if !strings.Contains(r, "rcpt@far.test") {
						t.Errorf("a message for %s arrived (forged envelope); from %s", r, m.From)
					}
				}
				if !strings.Contains(m.From, "sender@example.test") {
					t.Errorf("a message from %s arrived (forged envelope)", m.From)
				}
				if sm := subjectRe.FindSubmatch(m.Data); sm != nil {
					count[string(sm[1])]++
				} else {
					t.Errorf("a message without our Subject arrived:\n%s", m.Data)
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
			if len(final.Messages()) != len(subjects) {
				t.Errorf("%d messages arrived, want %d", len(final.Messages()), len(subjects))
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
	final := testkit.NewSink(t, testkit.SinkOptions{Name: "capture.test"})
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
	if !testkit.Poll(30*time.Second, func() bool { return len(final.Messages()) >= 2 }) {
		t.Fatalf("%d messages arrived, want 2", len(final.Messages()))
	}
	var got []string
	for _, m := range final.Messages() {
		if sm := subjectRe.FindSubmatch(m.Data); sm != nil {
			got = append(got, string(sm[1]))
		}
	}
	if strings.Join(got, " ") != "before after" {
		t.Errorf("arrived: %q, want before and after once each", got)
	}
	if i := bareAt(final.Raw()); i >= 0 {
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
