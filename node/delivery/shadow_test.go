package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp/reply"
)

// answeringPeers answers every holds request from a table of copy IDs
// (Done when absent) and counts the requests.
type answeringPeers struct {
	mu       sync.Mutex
	queued   map[string]bool
	requests int
}

func (p *answeringPeers) PeerAddrs() map[string]string  { return map[string]string{"n2": "n2.test:691"} }
func (p *answeringPeers) GroupAddrs() map[string]string { return nil }
func (p *answeringPeers) Holds(_ context.Context, _, _ string, ids []string) ([]queue.Holding, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	out := make([]queue.Holding, len(ids))
	for i, id := range ids {
		out[i] = queue.Done
		if p.queued[id] {
			out[i] = queue.Queued
		}
	}
	return out, nil
}

// A check round releases the copies a peer reports gone further with one
// commit per holds request (shadowBatch copies), not one per copy, and
// keeps the ones still queued there.
func TestShadowCheckReleasesPerBatch(t *testing.T) {
	q, err := queue.Open(queue.Options{InMemory: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const copies = 2*shadowBatch + 50
	peers := &answeringPeers{queued: map[string]bool{}}
	exp := time.Now().Add(time.Hour)
	for i := range copies {
		id := fmt.Sprintf("shadow-check-%06d", i)
		env := queue.Envelope{ID: id, From: "a@example.test", Rcpts: []queue.Rcpt{{Addr: "b@remote.test"}}}
		if err := q.Enqueue(t.Context(), env, []byte("Subject: s\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
		res := []queue.Result{{Addr: "b@remote.test", Outcome: queue.Delivered, HandedOn: true, Reply: reply.ParseOrText("250 ok")}}
		if _, err := q.RecordHandOff(id, res, queue.HandOff{CopyID: "c-" + id, Peer: "n2", Expires: exp}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			peers.queued["c-"+id] = true
		}
	}
	if st := q.ShadowStats(); st.Count != copies {
		t.Fatalf("%d shadows, want %d", st.Count, copies)
	}
	w := NewShadows(config.Default(), q, peers, noMetrics{}, time.Now, slog.New(slog.DiscardHandler))
	txns0, _ := q.CommitStats()
	w.CheckOnce(t.Context(), map[string]time.Time{})
	txns1, _ := q.CommitStats()
	if peers.requests != 3 {
		t.Fatalf("%d holds requests for %d copies, want 3", peers.requests, copies)
	}
	if got := txns1 - txns0; got > uint64(peers.requests) {
		t.Fatalf("the releases took %d commits, want at most one per request (%d)", got, peers.requests)
	}
	left := q.ShadowIDs("")
	if len(left) != len(peers.queued) {
		t.Fatalf("%d shadows left, want the %d still queued at the peer", len(left), len(peers.queued))
	}
	for _, id := range left {
		if !peers.queued[id] {
			t.Fatalf("shadow %s kept although the peer reported it done", id)
		}
	}
}
