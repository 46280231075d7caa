package main_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
)

// TestE2EQueueBackPressure: with the queue at its bound (the smarthost is down, so nothing
// leaves), the next message is refused with 451 4.3.0 and not lost silently.
func TestE2EQueueBackPressure(t *testing.T) {
	n := startNode(t, nodeOptions{
		AllowNetworks: []string{"127.0.0.0/8"},
		Smarthost:     extern.FreeAddr(t), // nothing listens there
		Extra:         map[string]any{"queue": map[string]any{"max_messages": 1}},
	})
	msg := "Subject: fill\r\n\r\nbody\r\n"
	if r := pythonSMTP(t, n.SMTP, step("sendmail", "sender@example.test", []string{"x@far.test"}, msg)); r[0].Code != 250 {
		t.Fatalf("first message: %v, want 250", r[0])
	}
	r := pythonSMTP(t, n.SMTP, step("sendmail", "sender@example.test", []string{"y@far.test"}, msg))
	if r[0].Code != 451 || !strings.Contains(r[0].Text, "4.3.0") {
		t.Errorf("message beyond the queue bound: %v, want 451 4.3.0", r[0])
	}
	if k, err := n.queueLen(); err != nil || k != 1 {
		t.Errorf("queue holds %d messages (err %v), want 1", k, err)
	}
}

// TestE2EDelayThenExpiry: a message that cannot leave produces a delay DSN after
// queue.delay_warning and a failure DSN when queue.lifetime runs out; then it is gone.
func TestE2EDelayThenExpiry(t *testing.T) {
	n := startNode(t, nodeOptions{
		AllowNetworks: []string{"127.0.0.0/8"},
		Smarthost:     extern.FreeAddr(t), // nothing listens there
		DelayWarning:  time.Second,
		Lifetime:      4 * time.Second,
		Extra:         map[string]any{"outbound": map[string]any{"dead_time": "200ms"}},
	})
	subject := uniq(t)
	msg := "From: alice@example.test\r\nTo: x@far.test\r\nSubject: " + subject + "\r\n\r\nwill expire\r\n"
	if r := pythonSMTP(t, n.SMTP, step("sendmail", "alice@example.test", []string{"x@far.test"}, msg)); r[0].Code != 250 {
		t.Fatalf("sendmail: %v", r[0])
	}
	isReport := func(m, action string) bool {
		l := strings.ToLower(m)
		return strings.Contains(l, "multipart/report") && strings.Contains(l, "action: "+action) && strings.Contains(l, "x@far.test")
	}
	var delayed, failed int
	if !testkit.Poll(30*time.Second, func() bool {
		delayed, failed = 0, 0
		for _, m := range mailbox(n.Maildir, "alice@example.test") {
			if isReport(m, "delayed") {
				delayed++
			}
			if isReport(m, "failed") {
				failed++
			}
		}
		return delayed >= 1 && failed >= 1
	}) {
		t.Fatalf("after 30s alice has %d delay and %d failure reports, want one of each; mailbox:\n%s",
			delayed, failed, strings.Join(mailbox(n.Maildir, "alice@example.test"), "\n----\n"))
	}
	n.waitQueueEmpty(20 * time.Second)
	if delayed != 1 || failed != 1 {
		t.Errorf("alice has %d delay and %d failure reports, want exactly one of each", delayed, failed)
	}
}

// TestE2EConnectionsPerIP: beyond limits.max_connections_per_ip, a client gets 421 4.7.0;
// once it closes one, it may connect again.
func TestE2EConnectionsPerIP(t *testing.T) {
	n := startNode(t, nodeOptions{Extra: map[string]any{"limits": map[string]any{"max_connections_per_ip": 2}}})
	greet := func() (net.Conn, string) {
		c, err := net.DialTimeout("tcp", n.SMTP, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return c, line
	}
	var open []net.Conn
	closeAll := func() {
		for _, c := range open {
			c.Close()
		}
		open = nil
	}
	defer closeAll()
	// The readiness probe's connection may still count for a moment after it closed: retry
	// until two connections at once are greeted with 220.
	var lines []string
	if !testkit.Poll(10*time.Second, func() bool {
		closeAll()
		lines = nil
		for i := 0; i < 2; i++ {
			c, line := greet()
			open = append(open, c)
			lines = append(lines, line)
		}
		return strings.HasPrefix(lines[0], "220") && strings.HasPrefix(lines[1], "220")
	}) {
		t.Fatalf("two connections from one address: greetings %q, want 220 for both", lines)
	}
	c, line := greet()
	c.Close()
	if !strings.HasPrefix(line, "421") || !strings.Contains(line, "4.7.0") {
		t.Errorf("third connection: %q, want 421 4.7.0", line)
	}
	open[0].Close()
	open = open[1:]
	if !testkit.Poll(10*time.Second, func() bool {
		c, line := greet()
		c.Close()
		return strings.HasPrefix(line, "220")
	}) {
		t.Errorf("no 220 after closing a connection")
	}
}
