package smtp

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
)

// countSink accepts and discards.
type countSink struct{ n atomic.Int64 }

func (s *countSink) Accept(context.Context, *Session, Envelope, []byte) error {
	s.n.Add(1)
	return nil
}

func body4K() []byte {
	var b strings.Builder
	b.WriteString("From: a@example.test\r\nTo: b@example.test\r\nSubject: bench\r\n\r\n")
	line := strings.Repeat("0123456789abcdef", 4) + "0123456789abcd\r\n" // 80 octets
	for b.Len() < 4096-len(line) {
		b.WriteString(line)
	}
	b.WriteString(strings.Repeat("x", 4096-b.Len()-2) + "\r\n")
	return []byte(b.String())
}

// BenchmarkAccept measures accepted messages per second: go-smtp server with
// our session, checks and Received header, a trivial Sink, and this
// package's client sending 4 KiB messages over reused sessions (PIPELINING).
func BenchmarkAccept(b *testing.B) {
	for _, par := range []bool{false, true} {
		name := "serial"
		if par {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			sink := &countSink{}
			srv := startServer(b, sink, func(c *ServerConfig) { c.Limits.MaxConnsPerIP = 1000 })
			c := NewClient(ClientConfig{HeloName: "bench.test", MaxIdlePerHost: 64})
			defer c.Close()
			m := Outgoing{From: "a@example.test", Rcpts: []Rcpt{{Addr: "b@example.test"}}, Body: body4K()}
			addr := srv.Addr().String()
			ctx := context.Background()
			sendOne := func() {
				if res, err := c.Send(ctx, addr, m); err != nil || !res[0].OK() {
					b.Errorf("send: %v %+v", err, res)
				}
			}
			b.SetBytes(int64(len(m.Body)))
			b.ResetTimer()
			if par {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						sendOne()
					}
				})
			} else {
				for i := 0; i < b.N; i++ {
					sendOne()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if got := sink.n.Load(); got != int64(b.N) {
				b.Fatalf("sink got %d, want %d", got, b.N)
			}
		})
	}
}

func TestBody4K(t *testing.T) {
	if n := len(body4K()); n != 4096 {
		t.Fatalf("body is %d bytes", n)
	}
}
