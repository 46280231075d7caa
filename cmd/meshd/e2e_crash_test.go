package main_test

import (
	"bufio"
	"fmt"
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
)

// TestE2ECrashRecovery sends crashMessages messages from concurrent clients, kills meshd with
// SIGKILL while they are still sending, restarts it on the same data directory and checks the
// Maildir: every message that got a 250 is delivered exactly once, no message is delivered
// twice, and nothing unknown appears. Messages that got no 250 may or may not arrive.
//
// The clients are Go's net/smtp (not ours); each records, per message, whether the server
// answered 250 to the end of DATA. Each message carries a unique Message-ID.
func TestE2ECrashRecovery(t *testing.T) {
	const (
		crashMessages = 2000
		workers       = 8
	)
	n := startNode(t, nodeOptions{})
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	msgID := func(i int) string { return fmt.Sprintf("<crash-%s-%d@e2e.test>", run, i) }

	acked := make([]atomic.Bool, crashMessages)
	var ackCount atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= crashMessages {
					return
				}
				if err := sendOne(n.SMTP, i, msgID(i)); err == nil {
					acked[i].Store(true)
					ackCount.Add(1)
				}
			}
		}()
	}

	// Crash once a third of the messages is acknowledged: the clients are mid-stream.
	if !poll(60*time.Second, func() bool { return ackCount.Load() >= crashMessages/3 }) {
		t.Fatalf("only %d of %d messages acknowledged after 60s", ackCount.Load(), crashMessages)
	}
	n.Kill()
	atKill := ackCount.Load()
	wg.Wait()
	total := ackCount.Load()
	t.Logf("killed meshd with SIGKILL at %d acks; %d of %d messages acknowledged in all", atKill, total, crashMessages)
	if total >= crashMessages {
		t.Fatalf("all %d messages were acknowledged: the kill did not happen mid-stream", crashMessages)
	}

	n.Start()
	want := map[string]bool{}
	for i := range acked {
		if acked[i].Load() {
			want[msgID(i)] = true
		}
	}
	var counts map[string]int
	if !poll(90*time.Second, func() bool {
		counts = maildirMessageIDs(t, filepath.Join(n.Maildir, "example.test", "crash"))
		for id := range want {
			if counts[id] == 0 {
				return false
			}
		}
		return true
	}) {
		missing := 0
		for id := range want {
			if counts[id] == 0 {
				missing++
			}
		}
		t.Fatalf("%d of %d acknowledged messages not delivered after restart", missing, len(want))
	}
	n.waitQueueEmpty(60 * time.Second)
	counts = maildirMessageIDs(t, filepath.Join(n.Maildir, "example.test", "crash"))

	valid := map[string]bool{}
	for i := 0; i < crashMessages; i++ {
		valid[msgID(i)] = true
	}
	extra := 0
	for id, c := range counts {
		switch {
		case !valid[id]:
			t.Errorf("unknown message %q delivered %d times", id, c)
		case c > 1:
			t.Errorf("message %s delivered %d times (acknowledged: %v)", id, c, want[id])
		case !want[id]:
			extra++ // sent, not acknowledged (killed mid-transaction), delivered once: allowed
		}
	}
	t.Logf("acknowledged %d, delivered %d distinct (%d of them never acknowledged), all exactly once: %v",
		len(want), len(counts), extra, !t.Failed())
}

// sendOne sends message i on a new connection and returns nil only on 250 after DATA.
func sendOne(addr string, i int, id string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, "127.0.0.1")
	if err != nil {
		return err
	}
	if err := c.Hello("crash.e2e.test"); err != nil {
		return err
	}
	if err := c.Mail("sender@remote.test"); err != nil {
		return err
	}
	if err := c.Rcpt("crash@example.test"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "From: sender@remote.test\r\nTo: crash@example.test\r\nMessage-ID: %s\r\nSubject: crash %d\r\n\r\n%s\r\n",
		id, i, strings.Repeat("crash test body line\r\n", 20)); err != nil {
		return err
	}
	if err := w.Close(); err != nil { // reads the reply to the final dot
		return err
	}
	_ = c.Quit()
	return nil
}

// maildirMessageIDs counts the Message-ID headers of the messages in a Maildir (new and cur).
func maildirMessageIDs(t *testing.T, dir string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range ents {
			id, err := headerValue(filepath.Join(dir, sub, e.Name()), "Message-Id")
			if err != nil {
				t.Fatal(err)
			}
			counts[id]++
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
