package queue

import (
	"github.com/meshd/meshd/smtp/reply"

	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHandOff measures the relay path of a mesh hop (Enqueue of a
// 4 KiB message, then the Record that hands it on) with 10 concurrent
// relays, with shadows off (RecordMessage) and on (RecordHandOff, the
// shadow in the same commit), in the same run. It reports msgs/s and
// commits per message: the shadow must not add a commit.
//
//	go test -run '^$' -bench HandOff -benchtime 5000x ./queue
func BenchmarkHandOff(b *testing.B) {
	for _, shadow := range []bool{false, true} {
		b.Run(fmt.Sprintf("shadow=%v", shadow), func(b *testing.B) {
			q := openQueue(b, Options{Dir: b.TempDir()})
			body := make([]byte, 4096)
			for i := range body {
				body[i] = 'a' + byte(i%26)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			exp := time.Now().Add(time.Hour)
			b.ResetTimer()
			start := time.Now()
			for range 10 {
				wg.Go(func() {
					for {
						n := next.Add(1)
						if n > int64(b.N) {
							return
						}
						id := fmt.Sprintf("bench-%010d", n)
						if err := q.Enqueue(context.Background(), env(id, "r@example.test"), body); err != nil {
							failed.Store(err)
							return
						}
						res := []Result{{Addr: "r@example.test", Outcome: Delivered, HandedOn: true, Reply: reply.ParseOrText("250 ok")}}
						var err error
						if shadow {
							_, err = q.RecordHandOff(id, res, HandOff{CopyID: "c" + id, Peer: "n2", Expires: exp})
						} else {
							_, err = q.RecordMessage(id, res)
						}
						if err != nil {
							failed.Store(err)
							return
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			txns, _ := q.CommitStats()
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
			b.ReportMetric(float64(txns)/float64(b.N), "commits/msg")
		})
	}
}
