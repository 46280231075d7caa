package node

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/node/config"
)

// BenchmarkAccept measures SMTP accept with durable acks: each op is one
// message in its own session (as smtp-source sends), from 1 and 10
// concurrent clients. Delivery is parked on a smarthost that never answers,
// so only the accept path is measured.
func BenchmarkAccept(b *testing.B) {
	for _, sessions := range []int{1, 10} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			cfg := config.Default()
			cfg.Node.DataDir = b.TempDir()
			cfg.Listen = config.Listen{SMTP: "127.0.0.1:0"}
			cfg.TLS.SelfSigned = false
			cfg.Outbound.Smarthost = ln.Addr().String()
			cfg.Outbound.MaxPerDestination = 1
			cfg.Outbound.ConnectTimeout = time.Minute
			cfg.Relay.AllowNetworks = []string{"127.0.0.1"}
			n, err := New(cfg, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			if err := n.Start(); err != nil {
				b.Fatal(err)
			}
			body := message("bench")
			for len(body) < 4096 {
				body += "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n"
			}
			work := make(chan int)
			var wg sync.WaitGroup
			errs := make(chan error, sessions)
			for range sessions {
				wg.Go(func() {
					for range work {
						if err := send(n.SMTPAddr(), "alice@example.test", []string{"x@far.test"}, body); err != nil {
							select {
							case errs <- err:
							default:
							}
						}
					}
				})
			}
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := range b.N {
				work <- i
			}
			close(work)
			wg.Wait()
			b.StopTimer()
			select {
			case err := <-errs:
				b.Fatal(err)
			default:
			}
		})
	}
}
