package main_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

// BenchmarkE2EMeshShadows is the end-to-end rate of the line a1 -> b1 -> c1
// (startShadowLine: three meshd processes, mutual TLS, synced queues) with
// shadow copies on (queue.max_shadow_bytes 1 GiB, mesh.shadow_check and
// mesh.shadow_timeout at their defaults), off (0), and on with
// mesh.shadow_check 200ms ("on-check200ms": the holds requests and the
// releases of the shadows happen within the measured time, which the
// default 10s round leaves after a short run): b.N messages of about 4 KiB
// submitted to a1 by ten concurrent clients (Go's net/smtp, one connection
// per message) and delivered into c1's Maildir. Reported: msgs/s
// (submission start to the last delivery), accepted/s, and the shadows a1
// holds at the end. scripts/bench-mesh runs the modes interleaved over
// several rounds.
func BenchmarkE2EMeshShadows(b *testing.B) {
	b.Run("on", func(b *testing.B) { benchShadowLine(b, true, nil) })
	b.Run("off", func(b *testing.B) { benchShadowLine(b, false, nil) })
	b.Run("on-check200ms", func(b *testing.B) { benchShadowLine(b, true, map[string]any{"shadow_check": "200ms"}) })
}

func benchShadowLine(b *testing.B, shadows bool, meshKeys map[string]any) {
	l := startShadowLine(b, shadows, meshKeys)
	const rcpt, sessions = "u@rgc.test", 10
	body := strings.Repeat("meshd shadow benchmark line of text.....\r\n", 100)
	run := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	inbox := l.inbox(rcpt)[0]
	b.ResetTimer()
	start := time.Now()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range sessions {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				if err := sendBench(l.a1.SMTP, rcpt, fmt.Sprintf("<%s-%d@e2e.test>", run, i), body); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	submitted := time.Since(start)
	if k := failed.Load(); k > 0 {
		b.Fatalf("%d of %d submissions failed", k, b.N)
	}
	// Count files, not Message-IDs: reading every copy on each poll would
	// load the machine being measured.
	var got int
	if !testkit.Poll(10*time.Minute, func() bool {
		files, _ := os.ReadDir(inbox)
		got = len(files)
		return got >= b.N
	}) {
		b.Fatalf("%d of %d delivered after 10 minutes", got, b.N)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/submitted.Seconds(), "accepted/s")
	if shadows {
		k, err := l.a1.shadowCount()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(k), "a1-shadows")
	}
}

// sendBench sends one message on a new connection; nil only on the 250
// after DATA.
func sendBench(addr, rcpt, id, body string) error {
	msg := fmt.Sprintf("From: s@rga.test\r\nTo: %s\r\nMessage-ID: %s\r\nSubject: bench\r\n\r\n%s", rcpt, id, body)
	return sendRaw(addr, "bench.e2e.test", "s@rga.test", rcpt, msg)
}
