package queue

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// BenchmarkEnqueue measures durable enqueues of 4 KiB bodies with 1, 10 and
// 50 concurrent callers, each call waiting for its synced commit. It
// reports msgs/s, the mean number of enqueues per transaction and the mean
// time per transaction (dominated by the disk flush). The store is in
// TMPDIR: on tmpfs the numbers show the CPU ceiling, not durability.
//
//	go test -run '^$' -bench Enqueue -benchtime 20000x ./queue
func BenchmarkEnqueue(b *testing.B) {
	layouts := []struct {
		name string
		tune func(badger.Options) badger.Options
	}{
		{"inline", nil}, // the default: 4 KiB bodies inline in the LSM tree
		{"vlog", func(o badger.Options) badger.Options { return o.WithValueThreshold(1 << 10) }},
	}
	for _, l := range layouts {
		for _, callers := range []int{1, 10, 50} {
			b.Run(fmt.Sprintf("%s/callers=%d", l.name, callers), func(b *testing.B) {
				benchEnqueue(b, callers, l.tune)
			})
		}
	}
}

func benchEnqueue(b *testing.B, callers int, tune func(badger.Options) badger.Options) {
	q := openQueue(b, Options{Dir: b.TempDir(), tune: tune})
	body := make([]byte, 4096)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	for range callers {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				e := env(fmt.Sprintf("bench-%010d", n), "rcpt@example.test")
				if err := q.Enqueue(context.Background(), e, body); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if txns, ops := q.CommitStats(); txns > 0 {
		b.ReportMetric(float64(ops)/float64(txns), "msgs/commit")
		b.ReportMetric(float64(elapsed.Microseconds())/float64(txns), "µs/commit")
	}
}

// BenchmarkDueBacklog compares one delivery-loop pass over a backlog in
// which 1024 due messages are already being worked on: Due must read all of
// them again to return the 256 new ones, DueFunc passes over them in memory.
//
//	go test -run '^$' -bench DueBacklog ./queue
func BenchmarkDueBacklog(b *testing.B) {
	const inflight, room = 1024, 256
	clk := newClock()
	q := openQueue(b, Options{InMemory: true, Now: clk.Now})
	body := make([]byte, 4096)
	skip := make(map[string]bool, inflight)
	for i := range inflight + room + 100 {
		id := fmt.Sprintf("due-%06d", i)
		if err := q.Enqueue(context.Background(), env(id, "rcpt@example.test"), body); err != nil {
			b.Fatal(err)
		}
		if i < inflight {
			skip[id] = true
		}
		clk.Add(time.Millisecond) // earliest first: the in-flight ones lead
	}
	b.Run("Due", func(b *testing.B) {
		for b.Loop() {
			ms, err := q.Due(clk.Now(), inflight+room)
			if err != nil || len(ms) != inflight+room {
				b.Fatalf("Due: %d messages, %v", len(ms), err)
			}
		}
	})
	b.Run("DueFunc", func(b *testing.B) {
		for b.Loop() {
			ms, err := q.DueFunc(clk.Now(), room, func(id string) bool { return !skip[id] })
			if err != nil || len(ms) != room {
				b.Fatalf("DueFunc: %d messages, %v", len(ms), err)
			}
		}
	})
}

// BenchmarkAttemptRecord is the delivery loop's bookkeeping of one mesh
// hop: the attempt persisted before the send (synced), the outcome after
// it. "via" also names the hop in doubt with the attempt (AttemptVia) and
// clears it with the outcome, what a mesh hop does to survive a crash of
// its sender mid-attempt; "plain" is Attempt alone. The ratio of the two
// is the cost of that record.
//
//	go test -run '^$' -bench AttemptRecord -benchtime 2000x ./queue
func BenchmarkAttemptRecord(b *testing.B) {
	for _, via := range []bool{false, true} {
		name := "plain"
		if via {
			name = "via"
		}
		b.Run(name, func(b *testing.B) {
			q := openQueue(b, Options{Dir: b.TempDir()})
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = fmt.Sprintf("bench-%010d", i)
				if err := q.Enqueue(context.Background(), env(ids[i], "rcpt@example.test"), make([]byte, 4096)); err != nil {
					b.Fatal(err)
				}
			}
			hop := &Doubt{Node: "a1", Addr: "10.0.0.1:2525", Channel: "10.0.0.1:691", CopyID: "abcdefghijklmnopqrstuvwxyz"}
			ok := Result{Addr: "rcpt@example.test", Outcome: Delivered, HandedOn: true}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var h *Doubt
				if via {
					h = hop
				}
				if err := q.AttemptVia(ids[i], nil, time.Now().Add(time.Minute), h); err != nil {
					b.Fatal(err)
				}
				if err := q.Record(ids[i], []Result{ok}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
