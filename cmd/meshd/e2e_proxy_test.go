package main_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
)

// startHAProxy runs Debian's haproxy in the foreground from a temporary
// config: a TCP frontend on a free loopback port that sends every
// connection to backend with a PROXY header (send is "send-proxy-v2" or
// "send-proxy" for v1), from source 127.0.0.2.
func startHAProxy(t *testing.T, backend, send string) string {
	t.Helper()
	bin := extern.Require(t, extern.FindHAProxy)
	front := freeAddrs(t, 1, nil)[0]
	cfg := fmt.Sprintf(`global
  maxconn 64
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen smtp
  bind %s
  server meshd %s %s source 127.0.0.2
`, front, backend, send)
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var mu sync.Mutex
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: &out, mu: &mu}, &lockedWriter{w: &out, mu: &mu}
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2e: start haproxy: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			mu.Lock()
			t.Logf("haproxy output:\n%s", out.String())
			mu.Unlock()
		}
	})
	if !testkit.Poll(10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", front, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("e2e: haproxy on %s does not pass meshd's greeting:\n%s", front, out.String())
	}
	return front
}

// dialFrom opens a connection to addr from the loopback address src and
// reads the first reply line.
func dialFrom(t *testing.T, src, addr string, send string) (net.Conn, string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if send != "" {
		_, _ = c.Write([]byte(send))
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return c, line
}

// TestE2EHAProxyProxyProtocol puts haproxy (send-proxy-v2) in front of the
// public listener: the Received header names the real client, relay policy
// and the per-IP cap apply to it, not to haproxy's address; a client that
// connects directly and sends its own PROXY header claiming an allowed
// address is refused; mail before and after the attack is delivered once.
func TestE2EHAProxyProxyProtocol(t *testing.T) {
	n := startNode(t, nodeOptions{
		ReadyOnSubmission: true,
		AllowNetworks:     []string{"127.0.0.7/32"},
		Extra: map[string]any{
			"listen": map[string]any{"proxy_protocol_from": []string{"127.0.0.2/32"}, "proxy_protocol": []string{"smtp"}},
			"limits": map[string]any{"max_connections_per_ip": 2},
		},
	})
	front := startHAProxy(t, n.SMTP, "send-proxy-v2")
	if !testkit.Poll(10*time.Second, func() bool { return smtpGreets(front) == nil }) {
		t.Fatalf("e2e: no greeting through haproxy on %s", front)
	}

	send := func(src, subject string) {
		t.Helper()
		out, code := swaks(t, "--server", front, "--local-interface", src, "--from", "carol@remote.test",
			"--to", "bob@example.test", "--header", "Subject: "+subject)
		if code != 0 {
			t.Fatalf("swaks via haproxy from %s (exit %d):\n%s", src, code, out)
		}
	}
	before := uniq(t) + "-before"
	send("127.0.0.7", before)
	msg := waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+before)
	if !strings.Contains(msg, "[127.0.0.7]") || strings.Contains(msg, "[127.0.0.2]") {
		t.Fatalf("Received does not name the real client 127.0.0.7:\n%s", msg)
	}

	// Relay policy: 127.0.0.7 is in relay.allow_networks, 127.0.0.8 is not
	// (and haproxy's 127.0.0.2 is not either).
	rcpt := func(src string) string {
		out, _ := swaks(t, "--server", front, "--local-interface", src, "--from", "x@example.test",
			"--to", "someone@elsewhere.test", "--quit-after", "RCPT")
		return out
	}
	if out := rcpt("127.0.0.7"); !strings.Contains(out, "<-  250") || strings.Contains(out, "550") {
		t.Errorf("relay from allowed 127.0.0.7 through haproxy:\n%s", out)
	}
	if out := rcpt("127.0.0.8"); !strings.Contains(out, "550 5.7.1") {
		t.Errorf("relay from 127.0.0.8 through haproxy not denied:\n%s", out)
	}

	// Per-IP cap of 2, counted per real client: a third from 127.0.0.9
	// gets 421 while 127.0.0.10 is still greeted, though every one of
	// these arrives from haproxy's single address.
	var lines []string
	if !testkit.Poll(10*time.Second, func() bool {
		lines = nil
		for range 2 {
			_, l := dialFrom(t, "127.0.0.9", front, "")
			lines = append(lines, l)
		}
		return strings.HasPrefix(lines[0], "220") && strings.HasPrefix(lines[1], "220")
	}) {
		t.Fatalf("two connections from 127.0.0.9: %q", lines)
	}
	if _, l := dialFrom(t, "127.0.0.9", front, ""); !strings.HasPrefix(l, "421 4.7.0") {
		t.Errorf("third connection from 127.0.0.9: %q, want 421 4.7.0", l)
	}
	if _, l := dialFrom(t, "127.0.0.10", front, ""); !strings.HasPrefix(l, "220") {
		t.Errorf("connection from 127.0.0.10 while 127.0.0.9 is at its cap: %q, want 220", l)
	}

	// The intruder connects to meshd directly, not through haproxy, and
	// claims to be the relay-allowed 127.0.0.7: refused before any SMTP.
	v1 := "PROXY TCP4 127.0.0.7 127.0.0.1 4000 25\r\nEHLO evil.test\r\n"
	if _, l := dialFrom(t, "127.0.0.66", n.SMTP, v1); !strings.HasPrefix(l, "554 5.7.1") {
		t.Errorf("direct PROXY v1 header from 127.0.0.66: %q, want 554 5.7.1", l)
	}
	v2 := "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x7f\x00\x00\x07\x7f\x00\x00\x01\x0f\xa0\x00\x19"
	if _, l := dialFrom(t, "127.0.0.66", n.SMTP, v2); !strings.HasPrefix(l, "554 5.7.1") {
		t.Errorf("direct PROXY v2 header from 127.0.0.66: %q, want 554 5.7.1", l)
	}

	after := uniq(t) + "-after"
	send("127.0.0.7", after)
	waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+after)
	for _, s := range []string{before, after} {
		if k := countMailbox(t, n.Maildir, "bob@example.test", "Subject: "+s); k != 1 {
			t.Errorf("%s delivered %d times, want once", s, k)
		}
	}
}

// countMailbox counts the messages of addr's mailbox that contain sub.
func countMailbox(t *testing.T, root, addr, sub string) int {
	t.Helper()
	k := 0
	for _, m := range mailbox(root, addr) {
		if strings.Contains(m, sub) {
			k++
		}
	}
	return k
}

// TestE2EHAProxyV1Submissions: haproxy with send-proxy (v1) in front of the
// implicit-TLS submission listener: the PROXY line comes before the TLS
// handshake, python's smtplib.SMTP_SSL submits through it, and Received
// names the real client.
func TestE2EHAProxyV1Submissions(t *testing.T) {
	bin := extern.Require(t, extern.FindPython3)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	subs := freeAddrs(t, 1, nil)[0]
	n := startNode(t, nodeOptions{Users: map[string]string{"alice": string(hash)},
		Extra: map[string]any{"listen": map[string]any{"submissions": subs,
			"proxy_protocol_from": []string{"127.0.0.2"}, "proxy_protocol": []string{"submissions"}}}})
	front := startHAProxy(t, subs, "send-proxy")
	host, port := splitHostPort(t, front)
	subject := uniq(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	script := strings.Replace(pySMTPSSL, "context=ctx, timeout=30", "context=ctx, timeout=30, source_address=(\"127.0.0.12\", 0)", 1)
	cmd := exec.CommandContext(ctx, bin, "-c", script, host, strconv.Itoa(port), "alice", "s3cret-pw", subject)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "\nsent") {
		t.Fatalf("smtplib SMTP_SSL through haproxy: %v\n%s%s", err, out, stderr.String())
	}
	msg := waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+subject)
	if !strings.Contains(msg, "[127.0.0.12]") {
		t.Fatalf("Received does not name the real client 127.0.0.12:\n%s", msg)
	}
}
