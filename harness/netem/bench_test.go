package netem

import (
	"context"
	"io"
	"net"
	"testing"
)

// BenchmarkRoundTrip measures a 1 KiB echo round trip through netem connections (no faults)
// against the same over plain sockets, to show the cost of the fault layer.
func BenchmarkRoundTrip(b *testing.B) {
	for _, tc := range []struct {
		name  string
		netem bool
	}{{"plain", false}, {"netem", true}} {
		b.Run(tc.name, func(b *testing.B) {
			nw := New(Options{})
			defer nw.Close()
			var ln net.Listener
			var err error
			if tc.netem {
				ln, err = nw.Host("b").Listen("tcp", "127.0.0.1:0")
			} else {
				ln, err = net.Listen("tcp", "127.0.0.1:0")
			}
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				io.Copy(c, c)
			}()
			var c net.Conn
			if tc.netem {
				c, err = nw.Host("a").DialContext(context.Background(), "tcp", ln.Addr().String())
			} else {
				c, err = net.Dial("tcp", ln.Addr().String())
			}
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 1024)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			c.Close()
			<-done
		})
	}
}
