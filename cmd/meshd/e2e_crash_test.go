package main_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
)

// The crash tests send messages from concurrent clients, kill meshd with SIGKILL while they are
// still sending, restart it on the same data directory and count what arrives by Message-ID:
// every message that got a 250 is delivered exactly once, no message is delivered twice, and
// nothing unknown appears. Messages that got no 250 may arrive (once) or not.
//
// The clients are Go's net/smtp (not ours), one new connection per message; each records
// whether the server answered 250 to the end of DATA.

// TestE2ECrashRecovery: local delivery to Maildir runs while the clients send, so the kill
// lands between accept, delivery and dequeue.
func TestE2ECrashRecovery(t *testing.T) {
	n := startNode(t, nodeOptions{})
	box := filepath.Join(n.Maildir, "example.test", "crash")
	crashTest(t, n, crashRun{
		messages: 2000,
		rcpt:     "crash@example.test",
		arrived:  func() map[string]int { return messageIDs(t, filepath.Join(box, "new"), filepath.Join(box, "cur")) },
	})
}

// TestE2ECrashRecoveryQueued: the smarthost is down during the crash, so every acknowledged
// message is only in the queue when meshd dies; after the restart the smarthost (smtp-sink)
// is up and must receive each of them once.
func TestE2ECrashRecoveryQueued(t *testing.T) {
	port := extern.FreePort(t)
	n := startNode(t, nodeOptions{
		AllowNetworks: []string{"127.0.0.0/8"},
		Smarthost:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Extra:         map[string]any{"outbound": map[string]any{"dead_time": "200ms"}},
	})
	var smart *sink
	crashTest(t, n, crashRun{
		messages: 1000,
		rcpt:     "crash@far.test",
		beforeRestart: func() {
			smart = startSink(t, port)
		},
		arrived: func() map[string]int {
			if smart == nil {
				return nil
			}
			return messageIDs(t, smart.DumpDir)
		},
	})
}

// TestE2EGracefulRestart: SIGTERM stops meshd cleanly (exit status 0) with mail still queued
// for a smarthost that is down; after a restart with the smarthost up, each message arrives once.
func TestE2EGracefulRestart(t *testing.T) {
	port := extern.FreePort(t)
	n := startNode(t, nodeOptions{
		AllowNetworks: []string{"127.0.0.0/8"},
		Smarthost:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Extra:         map[string]any{"outbound": map[string]any{"dead_time": "200ms"}},
	})
	const msgs = 20
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := 0; i < msgs; i++ {
		if err := sendOne(n.SMTP, "later@far.test", i, fmt.Sprintf("<graceful-%s-%d@e2e.test>", run, i)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := n.Stop(); err != nil {
		t.Errorf("meshd exit on SIGTERM: %v, want status 0", err)
	}
	smart := startSink(t, port)
	n.Start()
	if !testkit.Poll(60*time.Second, func() bool { return len(messageIDs(t, smart.DumpDir)) == msgs }) {
		t.Fatalf("after the restart the smarthost has %d of %d messages", len(messageIDs(t, smart.DumpDir)), msgs)
	}
	n.waitQueueEmpty(30 * time.Second)
	for id, c := range messageIDs(t, smart.DumpDir) {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
}

type crashRun struct {
	messages      int
	rcpt          string
	beforeRestart func()                // optional
	arrived       func() map[string]int // Message-ID -> copies delivered so far
}

func crashTest(t *testing.T, n *meshNode, r crashRun) {
	const workers = 8
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	msgID := func(i int) string { return fmt.Sprintf("<crash-%s-%d@e2e.test>", run, i) }

	acked := make([]atomic.Bool, r.messages)
	var ackCount, next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= r.messages {
					return
				}
				if err := sendOne(n.SMTP, r.rcpt, i, msgID(i)); err == nil {
					acked[i].Store(true)
					ackCount.Add(1)
				}
			}
		}()
	}

	// Crash once a third of the messages is acknowledged: the clients are mid-stream.
	if !testkit.Poll(90*time.Second, func() bool { return ackCount.Load() >= int64(r.messages/3) }) {
		t.Fatalf("only %d of %d messages acknowledged after 90s", ackCount.Load(), r.messages)
	}
	n.Kill()
	atKill := ackCount.Load()
	wg.Wait()
	total := ackCount.Load()
	before := len(r.arrived())
	t.Logf("killed meshd with SIGKILL at %d acks; %d of %d messages acknowledged in all; %d delivered before the kill",
		atKill, total, r.messages, before)
	if total >= int64(r.messages) {
		t.Fatalf("all %d messages were acknowledged: the kill did not happen mid-stream", r.messages)
	}

	if r.beforeRestart != nil {
		r.beforeRestart()
	}
	n.Start()
	want := map[string]bool{}
	for i := range acked {
		if acked[i].Load() {
			want[msgID(i)] = true
		}
	}
	var counts map[string]int
	missing := 0
	if !testkit.Poll(120*time.Second, func() bool {
		counts = r.arrived()
		missing = 0
		for id := range want {
			if counts[id] == 0 {
				missing++
			}
		}
		return missing == 0
	}) {
		t.Fatalf("%d of %d acknowledged messages not delivered 120s after the restart", missing, len(want))
	}
	n.waitQueueEmpty(60 * time.Second)
	counts = r.arrived()

	valid := map[string]bool{}
	for i := 0; i < r.messages; i++ {
		valid[msgID(i)] = true
	}
	unacked := 0
	for id, c := range counts {
		switch {
		case !valid[id]:
			t.Errorf("unknown message %q delivered %d times", id, c)
		case c > 1:
			t.Errorf("message %s delivered %d times (acknowledged: %v)", id, c, want[id])
		case !want[id]:
			unacked++ // sent, killed before the 250 reached the client, delivered once: allowed
		}
	}
	t.Logf("acknowledged %d, delivered %d distinct (%d of them never acknowledged), none twice: %v",
		len(want), len(counts), unacked, !t.Failed())
}

// sendOne sends message i to rcpt on a new connection and returns nil only on 250 after DATA.
func sendOne(addr, rcpt string, i int, id string) error {
	msg := fmt.Sprintf("From: sender@example.test\r\nTo: %s\r\nMessage-ID: %s\r\nSubject: crash %d\r\n\r\n%s\r\n",
		rcpt, id, i, strings.Repeat("crash test body line\r\n", 20))
	return sendRaw(addr, "crash.e2e.test", "sender@example.test", rcpt, msg)
}

// sendRaw sends msg from one sender to one recipient on a new connection
// (HELO helo) and returns nil only on the 250 after DATA.
func sendRaw(addr, helo, from, rcpt, msg string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	c, err := smtp.NewClient(conn, "127.0.0.1")
	if err != nil {
		return err
	}
	if err := c.Hello(helo); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil { // reads the reply to the final dot
		return err
	}
	_ = c.Quit()
	return nil
}

// messageIDs counts the Message-ID headers of the message files in dirs (a Maildir's new and
// cur, or an smtp-sink dump directory).
func messageIDs(t *testing.T, dirs ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range ents {
			id, err := headerValue(filepath.Join(dir, e.Name()), "Message-Id")
			if err != nil {
				t.Fatal(err)
			}
			if id != "" {
				counts[id]++
			}
		}
	}
	return counts
}

// headerValue returns the first value of header name in the message file at path.
func headerValue(path, name string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v), nil
		}
	}
	return "", sc.Err()
}

// TestE2EShutdownTellsIdleClients: on SIGTERM a client waiting between commands (Python's
// smtplib, after EHLO) is told "421 4.3.2" (RFC 5321 §3.8) instead of losing its connection
// without a word, and meshd exits with status 0.
func TestE2EShutdownTellsIdleClients(t *testing.T) {
	n := startNode(t, nodeOptions{AllowNetworks: []string{"127.0.0.0/8"}})
	ready := filepath.Join(t.TempDir(), "ready")
	stopped := make(chan error, 1)
	go func() {
		if !testkit.Poll(30*time.Second, func() bool { _, err := os.Stat(ready); return err == nil }) {
			stopped <- fmt.Errorf("the client never reached its idle state")
			return
		}
		stopped <- n.Stop()
	}()
	replies := pythonSMTP(t, n.SMTP, []any{"ehlo"}, []any{"touch", ready}, []any{"getreply"})
	if err := <-stopped; err != nil {
		t.Errorf("meshd exit on SIGTERM: %v, want status 0", err)
	}
	if r := replies[2]; r.Code != 421 || !strings.HasPrefix(r.Text, "4.3.2 ") {
		t.Fatalf("idle client got %v on shutdown, want 421 4.3.2", r)
	}
}
