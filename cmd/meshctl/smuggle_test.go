package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

// smugglingEnds are the end-of-data look-alikes of SMTP smuggling.
var smugglingEnds = []string{"\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r.\r", "\r.\n", "\r\n.\n", "\r\n.\rX"}

// sendRaw plays a client that writes DATA content byte for byte and
// returns the reply to its end.
func sendRaw(t *testing.T, addr, from, to, content string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	reply := func() string {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("read reply: %v", err)
			}
			if len(l) < 4 || l[3] != '-' {
				return strings.TrimRight(l, "\r\n")
			}
		}
	}
	reply()
	for _, cmd := range []string{"EHLO attacker.test", "MAIL FROM:<" + from + ">", "RCPT TO:<" + to + ">", "DATA"} {
		_, _ = io.WriteString(c, cmd+"\r\n")
		if r := reply(); r[0] != '2' && r[0] != '3' {
			t.Fatalf("%s: %s", cmd, r)
		}
	}
	_, _ = io.WriteString(c, content)
	r := reply()
	_, _ = io.WriteString(c, "QUIT\r\n")
	return r
}

// TestDemoSmugglingAcrossMesh sends a message holding each end-of-data
// look-alike, followed by a forged transaction for carol, to a1 for bob in
// rgc: it crosses two mesh hops (a1 -> rgb -> rgc) and is delivered exactly
// once into bob's Maildir with CRLF line ends only; carol gets nothing.
func TestDemoSmugglingAcrossMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 6-node mesh")
	}
	d, dir := startDemo(t)
	a1 := d.Info().Nodes[0]
	var subjects []string
	for i, eod := range smugglingEnds {
		s := fmt.Sprintf("smuggle-mesh-%d", i)
		content := "From: alice@rga.test\r\nSubject: " + s + "\r\n\r\nouter" + eod +
			"MAIL FROM:<alice@rga.test>\r\nRCPT TO:<carol@rgc.test>\r\nDATA\r\nSubject: forged-" + s + "\r\n\r\nforged\r\n.\r\n"
		if r := sendRaw(t, a1.SMTP, "alice@rga.test", "bob@rgc.test", content); !strings.HasPrefix(r, "250") {
			t.Fatalf("%q: %s", eod, r)
		}
		subjects = append(subjects, s)
	}
	files := func(rcpt string) map[string][]byte {
		out := map[string][]byte{}
		for _, n := range []string{"c1", "c2"} {
			paths, _ := filepath.Glob(filepath.Join(dir, n, "maildir", "rgc.test", rcpt, "new", "*"))
			for _, p := range paths {
				if b, err := os.ReadFile(p); err == nil {
					out[p] = b
				}
			}
		}
		return out
	}
	testkit.Eventually(t, 60*time.Second, "every message delivered to bob", func() error {
		if n := len(files("bob")); n < len(subjects) {
			return fmt.Errorf("%d of %d", n, len(subjects))
		}
		return nil
	})
	count := map[string]int{}
	for p, b := range files("bob") {
		for _, s := range subjects {
			if bytes.Contains(b, []byte("Subject: "+s+"\r\n")) {
				count[s]++
			}
		}
		for i, c := range b {
			if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') || c == '\n' && (i == 0 || b[i-1] != '\r') {
				t.Errorf("%s: bare CR or LF at %d: %q", p, i, b[max(0, i-40):min(len(b), i+40)])
				break
			}
		}
	}
	for i, s := range subjects {
		if count[s] != 1 {
			t.Errorf("%s (%q): %d copies in bob's Maildir, want 1", s, smugglingEnds[i], count[s])
		}
	}
	if len(files("bob")) != len(subjects) {
		t.Errorf("bob has %d messages, want %d", len(files("bob")), len(subjects))
	}
	if n := len(files("carol")); n != 0 {
		t.Errorf("carol received %d forged messages", n)
	}
}
