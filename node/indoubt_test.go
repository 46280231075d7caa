package node

import (
	"context"
	"testing"
	"time"

	"github.com/meshd/meshd/node/maildir"
	"github.com/meshd/meshd/queue"
)

// TestInDoubtCopyNotDeliveredTwice recreates the state a crash leaves
// between writing a Maildir copy and recording it: the attempt is persisted,
// the copy is on disk, the recipient is still pending. The restarted node
// must find the copy instead of writing a second one.
func TestInDoubtCopyNotDeliveredTwice(t *testing.T) {
	cfg := testConfig(t)
	n1, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("Subject: once\r\n\r\nonly once\r\n")
	ids := []string{"indoubt-written", "indoubt-notwritten"}
	for _, id := range ids {
		env := queue.Envelope{ID: id, From: "a@far.test", Rcpts: []queue.Rcpt{{Addr: "bob@example.test"}}, ReceivedAt: time.Now(), Source: "smtp"}
		if err := n1.Queue().Enqueue(context.Background(), env, body); err != nil {
			t.Fatal(err)
		}
		if err := n1.Queue().Attempt(id, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// The copy as delivery writes it: Return-Path, Delivered-To, X-Meshd-ID.
	copyMsg := append([]byte("Return-Path: <a@far.test>\r\nDelivered-To: bob@example.test\r\nX-Meshd-ID: "+ids[0]+"\r\n"), body...)
	if _, err := maildir.Deliver(n1.cfg.Delivery.Maildir, "bob@example.test", copyMsg); err != nil {
		t.Fatal(err)
	}
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}

	n2 := startNode(t, cfg, Options{})
	waitFor(t, 5*time.Second, "queue empty", func() bool { return n2.Queue().Stats().Messages == 0 })
	if got := len(mailbox(t, n2.cfg, "bob@example.test")); got != 2 {
		t.Errorf("mailbox has %d copies, want 2 (one per message, none twice)", got)
	}
}
