package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/queue"
)

// TestOldRecordWithoutOriginDelivers: a message queued by a version that
// did not record Envelope.Origin and MessageID (they are read from the
// header then) is still delivered after the upgrade, once.
func TestOldRecordWithoutOriginDelivers(t *testing.T) {
	cfg := testConfig(t)
	n1, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("Message-ID: <old-record@far.test>\r\nSubject: queued before the upgrade\r\n\r\nstill here\r\n")
	env := queue.Envelope{ID: "old-record-0001", From: "a@far.test", Rcpts: []queue.Rcpt{{Addr: "bob@example.test"}},
		ReceivedAt: time.Now(), Source: "smtp"} // no Origin, no MessageID
	if err := n1.Queue().Enqueue(context.Background(), env, body); err != nil {
		t.Fatal(err)
	}
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, cfg, Options{})
	waitFor(t, 5*time.Second, "queue empty", func() bool { return n2.Queue().Stats().Messages == 0 })
	box := mailbox(t, n2.cfg, "bob@example.test")
	if len(box) != 1 || !strings.Contains(box[0], "still here") {
		t.Fatalf("mailbox = %q, want the one old message", box)
	}
}
