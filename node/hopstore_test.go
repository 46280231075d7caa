package node

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/queue"
)

// heldRemote is a smarthost that holds every RCPT until release is
// called, so the message stays queued at the node that sends to it.
func heldRemote(t *testing.T) (*remoteMTA, func()) {
	hold := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	remote := startRemote(t, func(string, int) error { <-hold; return nil })
	t.Cleanup(release) // before the server's own cleanup, which waits for the session
	return remote, release
}

// queuedOne waits for the one message n holds and returns it with its body.
func queuedOne(t *testing.T, n *Node) (*queue.Message, []byte) {
	t.Helper()
	var m *queue.Message
	var body []byte
	poll(t, 10*time.Second, "the message queued", func() error {
		msgs, err := n.Queue().List(queue.Filter{})
		if err != nil || len(msgs) != 1 {
			return fmt.Errorf("%d messages (%v)", len(msgs), err)
		}
		m = msgs[0]
		body, err = n.Queue().Body(m.ID)
		return err
	})
	return m, body
}

// TestStoredBodyIsMessageAsReceived: the queue stores the message as the
// client sent it, byte for byte; the node's Received: field is kept in the
// record and sent in front of it, so the next server gets both.
func TestStoredBodyIsMessageAsReceived(t *testing.T) {
	remote, release := heldRemote(t)
	cfg := testConfig(t)
	cfg.Outbound.Smarthost = remote.addr.String()
	cfg.Relay.AllowNetworks = []string{"127.0.0.1"}
	n := startNode(t, cfg, Options{})
	mustSend(t, n.SMTPAddr(), "alice@example.test", []string{"x@far.test"}, hopMessage)

	m, body := queuedOne(t, n)
	if string(body) != hopMessage {
		t.Fatalf("stored body:\n%q\nwant the message as received:\n%q", body, hopMessage)
	}
	hop := string(m.HopHeader)
	if !strings.HasPrefix(hop, "Received: from client.test ") || !strings.HasSuffix(hop, "\r\n") || fieldCount(hop) != 1 || m.PeerFields != 0 {
		t.Fatalf("hop header %q, peer fields %d: want our one Received: field", hop, m.PeerFields)
	}
	if m.Size != int64(len(hop)+len(body)) {
		t.Errorf("size %d, want %d (hop header and body)", m.Size, len(hop)+len(body))
	}
	release()
	poll(t, 10*time.Second, "message at the smarthost", func() error {
		if len(remote.received()) != 1 {
			return fmt.Errorf("%d messages", len(remote.received()))
		}
		return nil
	})
	if got := remote.received()[0].Body; got != hop+hopMessage {
		t.Fatalf("smarthost got:\n%q\nwant the hop header, then the message:\n%q", got, hop+hopMessage)
	}
}

// TestStoredBodyFromMeshPeer: a copy from a mesh peer is stored as it
// came, the peer's X-Meshd-* block at its top (PeerFields bytes, read
// into the record) and the Received: fields of the earlier hops below it
// (c1 stores what b1 sent, b1 what a1 sent); the node's own Received:
// field is kept in the record. Out of the organisation the copy goes
// without the peer's block.
func TestStoredBodyFromMeshPeer(t *testing.T) {
	remote, release := heldRemote(t)
	tm := exitMesh(t, remote)
	if err := send(tm.nodes["a1"].SMTPAddr(), "alice@rga.test", []string{"x@far.test"}, hopMessage); err != nil {
		t.Fatal(err)
	}
	m, body := queuedOne(t, tm.nodes["c1"])
	block := "X-Meshd-ID: " + m.ID + "\r\nX-Meshd-Origin: " + m.Origin + "\r\nX-Meshd-Trace: rga, rgb\r\n"
	// Then the copy's age in the mesh (docs/shadow.md), whatever it is.
	if i := strings.Index(string(body), "X-Meshd-Age: "); i == len(block) {
		if j := strings.Index(string(body[i:]), "\r\n"); j > 0 {
			block = string(body[:i+j+2])
		}
	}
	if m.Origin == m.ID || m.PeerFields != len(block) || !strings.HasPrefix(string(body), block) {
		t.Fatalf("stored body %q with %d bytes of peer fields: want the peer's block %q on top", body, m.PeerFields, block)
	}
	prev, ok := strings.CutSuffix(string(body[len(block):]), hopMessage)
	if !ok || !strings.HasPrefix(prev, "Received: from a1.rga.meshd.test ") || !strings.Contains(prev, "by b1.rgb.meshd.test ") ||
		!strings.Contains(prev, "\r\nReceived: from client.test ") || fieldCount(prev) != 2 {
		t.Fatalf("stored body %q: want the peer's block, b1's and a1's Received: fields, then the message", body)
	}
	hop := string(m.HopHeader)
	if !strings.HasPrefix(hop, "Received: from b1.rgb.meshd.test ") || fieldCount(hop) != 1 {
		t.Fatalf("hop header %q: want c1's Received: field", hop)
	}
	release()
	poll(t, 20*time.Second, "message at the smarthost", func() error {
		if len(remote.received()) != 1 {
			return fmt.Errorf("%d messages", len(remote.received()))
		}
		return nil
	})
	if want := hop + string(body[m.PeerFields:]); remote.received()[0].Body != want {
		t.Fatalf("smarthost got:\n%q\nwant the hop header, then the stored body without the peer's block:\n%q", remote.received()[0].Body, want)
	}
}

// fieldCount counts the header fields of a block of CRLF-ended lines.
func fieldCount(block string) int {
	n := 0
	for _, line := range strings.Split(strings.TrimSuffix(block, "\r\n"), "\r\n") {
		if line != "" && line[0] != ' ' && line[0] != '\t' {
			n++
		}
	}
	return n
}
