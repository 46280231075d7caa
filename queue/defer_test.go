package queue

import (
	"errors"
	"testing"
	"time"
)

// TestAwaitUrgent checks when a batch that starts with a deferrable op waits
// for an Enqueue to share its commit.
func TestAwaitUrgent(t *testing.T) {
	urgent := &op{}
	lazy := func() *op { return &op{deferrable: true} }
	tests := []struct {
		name      string
		lastAgo   time.Duration // <0: no op that is not deferrable seen yet
		gap       time.Duration
		queued    []*op
		wantBatch int // batch length returned, first op included
		wantLeft  int // ops left in the channel
	}{
		{"no enqueue seen", -1, time.Millisecond, []*op{urgent}, 1, 1},
		{"enqueues long ago", time.Second, time.Millisecond, []*op{urgent}, 1, 1},
		{"enqueues too sparse", 0, 10 * maxDefer, []*op{urgent}, 1, 1},
		{"joins next enqueue", 0, 2 * time.Millisecond, []*op{lazy(), urgent, lazy()}, 3, 1},
		{"times out alone", 0, 2 * time.Millisecond, nil, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &Queue{opts: Options{MaxBatch: 16}, ops: make(chan *op, 16), stop: make(chan struct{}),
				epoch: time.Now().Add(-time.Hour)}
			if tt.lastAgo >= 0 {
				q.lastUrgent.Store(int64(time.Since(q.epoch) - tt.lastAgo))
			}
			q.urgentGap.Store(int64(tt.gap))
			for _, o := range tt.queued {
				q.ops <- o
			}
			done := make(chan []*op, 1)
			go func() { done <- q.awaitUrgent([]*op{lazy()}) }()
			select {
			case batch := <-done:
				if len(batch) != tt.wantBatch {
					t.Errorf("batch of %d ops, want %d", len(batch), tt.wantBatch)
				}
				if len(q.ops) != tt.wantLeft {
					t.Errorf("%d ops left queued, want %d", len(q.ops), tt.wantLeft)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("awaitUrgent did not return")
			}
		})
	}
}

// TestDeferrableOpsDurable runs Attempt and Record while Enqueues arrive and
// checks that every change reported done survives a reopen.
func TestDeferrableOpsDurable(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir, Now: clk.Now})
	ctx := t.Context()
	const n = 40
	for i := range n {
		if err := q.Enqueue(ctx, env(idN(i), "r@example.test"), []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 2*n)
	for i := range n {
		go func() {
			if err := q.Attempt(idN(i), nil, clk.Now().Add(time.Hour)); err != nil {
				errs <- err
				return
			}
			errs <- q.Record(idN(i), []Result{{Addr: "r@example.test", Outcome: Delivered}})
		}()
		go func() { errs <- q.Enqueue(ctx, env(idN(n+i), "r@example.test"), []byte("x\r\n")) }()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Reopen: what the calls reported as done must be on disk.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, Options{Dir: dir, Now: clk.Now})
	for i := range n {
		if _, err := q.Get(idN(i)); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s) after delivery: %v, want ErrNotFound", idN(i), err)
		}
		if _, err := q.Get(idN(n + i)); err != nil {
			t.Errorf("Get(%s): %v", idN(n+i), err)
		}
	}
	if s := q.Stats(); s.Messages != n {
		t.Errorf("Stats().Messages = %d, want %d", s.Messages, n)
	}
}

func idN(i int) string { return "defer-" + time.Unix(int64(i), 0).UTC().Format("150405") }
