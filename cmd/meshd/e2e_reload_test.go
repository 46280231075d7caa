package main_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/meshd/meshd/internal/testkit"
)

// notifySocket is the service manager's end of sd_notify: a unixgram socket whose path goes
// into meshd's NOTIFY_SOCKET.
type notifySocket struct {
	t    *testing.T
	Path string
	c    *net.UnixConn
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifySocket{t: t, Path: p, c: c}
}

// expect reads notifications until one contains want (a VAR=value line) and returns it.
func (s *notifySocket) expect(want string, timeout time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var seen []string
	buf := make([]byte, 4096)
	for {
		_ = s.c.SetReadDeadline(deadline)
		k, err := s.c.Read(buf)
		if err != nil {
			s.t.Fatalf("sd_notify: no %q within %v (seen %q): %v", want, timeout, seen, err)
		}
		msg := string(buf[:k])
		seen = append(seen, msg)
		for _, line := range strings.Split(msg, "\n") {
			if line == want {
				return msg
			}
		}
	}
}

// writeCert writes a fresh certificate for the host name cn (from a test CA) to certPath and
// keyPath.
func writeCert(t *testing.T, cn, certPath, keyPath string) {
	t.Helper()
	h := testkit.NewCA(t).Host(t, cn)
	for from, to := range map[string]string{h.CertFile: certPath, h.KeyFile: keyPath} {
		if err := os.WriteFile(to, mustRead(t, from), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// startTLSName opens a new session with Go's net/smtp, runs STARTTLS and returns the host
// name of the certificate the server offered.
func startTLSName(t *testing.T, addr string) string {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	st, _ := c.TLSConnectionState()
	_ = c.Quit()
	return st.PeerCertificates[0].DNSNames[0]
}

// sendWithReceived sends one message carrying k Received: fields through c (an open session)
// and returns the error of DATA's reply.
func sendWithReceived(c *smtp.Client, rcpt, subject string, k int) error {
	if err := c.Mail("sender@remote.test"); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for i := range k {
		b.WriteString("Received: from hop" + string(rune('a'+i)) + ".test by relay.test; Mon, 7 Dec 2026 10:00:00 +0000\r\n")
	}
	b.WriteString("From: sender@remote.test\r\nTo: " + rcpt + "\r\nSubject: " + subject + "\r\n\r\nbody\r\n")
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	return w.Close()
}

// editConfig rewrites the node's YAML file with edit applied to its top-level map.
func editConfig(t *testing.T, n *meshNode, edit func(cfg map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.ConfigPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (n *meshNode) hup(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

func (n *meshNode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// TestE2EReload: meshd under a notify socket says READY=1 once it accepts mail; SIGHUP makes
// it read its file again (RELOADING=1 with MONOTONIC_USEC, then READY=1): a lower
// limits.max_received_headers and a renewed certificate apply to new messages and sessions,
// a session opened before the reload carries on and its mail is delivered, a changed listen
// address is reported as needing a restart; a broken file is refused with its reason, and the
// node keeps running and delivering. SIGHUP never stops it; SIGTERM says STOPPING=1. With
// $WATCHDOG_USEC set (WatchdogSec=) it sends WATCHDOG=1.
func TestE2EReload(t *testing.T) {
	ns := listenNotify(t)
	certDir := t.TempDir()
	certPath, keyPath := filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "key.pem")
	writeCert(t, "old.e2e.test", certPath, keyPath)
	n := startNode(t, nodeOptions{
		Env:   []string{"NOTIFY_SOCKET=" + ns.Path, "WATCHDOG_USEC=400000"}, // WatchdogSec=400ms
		Extra: map[string]any{"tls": map[string]any{"cert_file": certPath, "key_file": keyPath, "self_signed": false}},
	})
	ns.expect("READY=1", 20*time.Second)
	ns.expect("WATCHDOG=1", 5*time.Second)
	subject := uniq(t)
	var status struct {
		Build struct{ Version, Commit, Date string }
	}
	if err := n.adminGet("/api/status", &status); err != nil || status.Build.Version == "" || status.Build.Commit == "" {
		t.Errorf("/api/status has no build: %+v %v", status, err)
	}
	if m := adminText(t, n, "/metrics"); !strings.Contains(m, "meshd_build_info{commit=") {
		t.Errorf("/metrics has no meshd_build_info")
	}

	if got := startTLSName(t, n.SMTP); got != "old.e2e.test" {
		t.Fatalf("certificate before reload: %q", got)
	}
	// A session that stays open across both reloads.
	idle, err := smtp.Dial(n.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := idle.Hello("idle.e2e.test"); err != nil {
		t.Fatal(err)
	}
	if err := sendWithReceived(idle, "bob@example.test", subject+"-before", 5); err != nil {
		t.Fatalf("5 Received fields under the default limit 30: %v", err)
	}

	writeCert(t, "new.e2e.test", certPath, keyPath)
	editConfig(t, n, func(cfg map[string]any) {
		cfg["limits"] = map[string]any{"max_received_headers": 3, "max_connections_per_ip": 2}
		cfg["log"] = map[string]any{"level": "debug", "format": "text"}
		cfg["queue"].(map[string]any)["retry"] = map[string]any{"initial": "300ms", "max": "2s", "factor": 2, "jitter": 0.1}
		cfg["listen"].(map[string]any)["submission"] = "127.0.0.1:1" // cannot move a listener live
	})
	n.hup(t)
	msg := ns.expect("RELOADING=1", 10*time.Second)
	if !strings.Contains(msg, "\nMONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", msg)
	}
	ns.expect("READY=1", 10*time.Second)

	if got := startTLSName(t, n.SMTP); got != "new.e2e.test" {
		t.Errorf("a new session after the reload was offered %q, want the renewed certificate new.e2e.test", got)
	}
	// The idle session is one connection from 127.0.0.1; the cap is now two. The server
	// counts the STARTTLS probe's connection until it has seen it close: poll for the slot.
	var second net.Conn
	var g string
	if !testkit.Poll(5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", n.SMTP, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if g = greeting(t, c); strings.HasPrefix(g, "220") {
			second = c
			return true
		}
		c.Close()
		return false
	}) {
		t.Fatalf("second connection under max_connections_per_ip 2: %q", g)
	}
	defer second.Close()
	third, err := net.DialTimeout("tcp", n.SMTP, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if g := greeting(t, third); !strings.HasPrefix(g, "421") {
		t.Errorf("third connection over max_connections_per_ip 2: %q, want 421", g)
	}
	third.Close()
	second.Close()

	err = sendWithReceived(idle, "bob@example.test", subject+"-loop", 5)
	if err == nil || !strings.Contains(err.Error(), "554") {
		t.Errorf("5 Received fields after max_received_headers: 3: %v, want 554", err)
	}
	if err := idle.Reset(); err != nil {
		t.Fatalf("session opened before the reload: RSET: %v", err)
	}
	if err := sendWithReceived(idle, "bob@example.test", subject+"-after", 1); err != nil {
		t.Fatalf("session opened before the reload: %v", err)
	}
	waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+subject+"-before")
	waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+subject+"-after")
	if !testkit.Poll(5*time.Second, func() bool {
		return strings.Contains(n.logTail(), "applied=\"[log.level tls.cert_file limits.max_received_headers limits.max_connections_per_ip queue.retry]\"")
	}) {
		t.Errorf("the reload does not report the live changes it applied:\n%s", n.logTail())
	}
	if !testkit.Poll(5*time.Second, func() bool { return strings.Contains(n.logTail(), "needs_restart=[listen]") }) {
		t.Errorf("the moved listener is not reported as needing a restart:\n%s", n.logTail())
	}

	// The admin API (meshctl reload) does the same and answers with the report.
	rep := adminReload(t, n)
	if rep.code != http.StatusOK || !strings.Contains(rep.body, `"needs_restart":["listen"]`) {
		t.Errorf("POST /api/reload: %d %s", rep.code, rep.body)
	}
	ns.expect("READY=1", 10*time.Second)

	// A broken file: refused, reason logged, the node runs on its configuration.
	if err := os.WriteFile(n.ConfigPath, append(mustRead(t, n.ConfigPath), []byte("queue:\n  retry:\n    intial: 1s\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	n.hup(t)
	ns.expect("RELOADING=1", 10*time.Second)
	ready := ns.expect("READY=1", 10*time.Second)
	if !strings.Contains(ready, "reload refused") {
		t.Errorf("READY=1 after a refused reload does not say so: %q", ready)
	}
	if !testkit.Poll(5*time.Second, func() bool { return strings.Contains(n.logTail(), "reload refused") }) {
		t.Errorf("no log line says why the reload was refused:\n%s", n.logTail())
	}
	if rep := adminReload(t, n); rep.code != http.StatusUnprocessableEntity || !strings.Contains(rep.body, "queue") {
		t.Errorf("POST /api/reload of a broken file: %d %s, want 422 naming the key", rep.code, rep.body)
	}
	if !n.running() {
		t.Fatalf("meshd exited on SIGHUP:\n%s", n.logTail())
	}
	out, code := swaks(t, "--server", n.SMTP, "--from", "sender@remote.test", "--to", "bob@example.test", "--header", "Subject: "+subject+"-broken")
	if code != 0 {
		t.Fatalf("swaks after a refused reload: exit %d\n%s", code, out)
	}
	waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+subject+"-broken")
	if err := idle.Noop(); err != nil {
		t.Errorf("session opened before the reloads was cut: %v", err)
	}
	_ = idle.Quit()

	if err := n.Stop(); err != nil {
		t.Errorf("meshd exit after SIGTERM: %v", err)
	}
	ns.expect("STOPPING=1", 5*time.Second)
}

type httpReply struct {
	code int
	body string
}

func adminReload(t *testing.T, n *meshNode) httpReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.Admin+"/api/reload", nil)
	// State-changing calls need the node's admin token (as meshctl reads it).
	tok := strings.TrimSpace(string(mustRead(t, filepath.Join(n.DataDir, "admin.token"))))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	var compact bytes.Buffer
	if json.Compact(&compact, b.Bytes()) == nil {
		return httpReply{resp.StatusCode, compact.String()}
	}
	return httpReply{resp.StatusCode, b.String()}
}

func adminText(t *testing.T, n *meshNode, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + n.Admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}

// greeting reads the server's first line on c.
func greeting(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	k, err := c.Read(buf)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(buf[:k])
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
