package netem

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func newTransport(t *testing.T, nw *Network, host string) *GossipTransport {
	t.Helper()
	g, err := nw.Host(host).GossipTransport("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown() })
	return g
}

// recvPacket returns the next packet within d, or nil.
func recvPacket(g *GossipTransport, d time.Duration) *memberlist.Packet {
	select {
	case p := <-g.PacketCh():
		return p
	case <-time.After(d):
		return nil
	}
}

func TestGossipPackets(t *testing.T) {
	const delay = 80 * time.Millisecond
	tests := []struct {
		name       string
		fault      func(nw *Network)
		aToB       bool // packet a -> b arrives
		bToA       bool
		minLatency time.Duration
	}{
		{"healthy", func(*Network) {}, true, true, 0},
		{"cut", func(nw *Network) { nw.Cut("a", "b") }, false, false, 0},
		{"one way a to b", func(nw *Network) { nw.CutOneWay("a", "b") }, false, true, 0},
		{"blackhole", func(nw *Network) { nw.Blackhole("a", "b") }, false, false, 0},
		{"drop all", func(nw *Network) { nw.Drop("a", "b", 1) }, false, false, 0},
		{"delay", func(nw *Network) { nw.Delay("a", "b", delay) }, true, true, delay},
		{"crash b", func(nw *Network) { nw.Crash("b") }, false, false, 0},
		{"healed", func(nw *Network) { nw.Cut("a", "b"); nw.Heal("a", "b") }, true, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nw := newNet(t)
			ga, gb := newTransport(t, nw, "a"), newTransport(t, nw, "b")
			tt.fault(nw)
			for _, dir := range []struct {
				from, to *GossipTransport
				want     bool
			}{{ga, gb, tt.aToB}, {gb, ga, tt.bToA}} {
				start := time.Now()
				if _, err := dir.from.WriteTo([]byte("ping"), dir.to.Addr()); err != nil {
					t.Fatalf("%s -> %s: WriteTo: %v", dir.from.host, dir.to.host, err)
				}
				wait := 300 * time.Millisecond // bounded wait for absence
				if dir.want {
					wait = 5 * time.Second
				}
				p := recvPacket(dir.to, wait)
				switch {
				case dir.want && p == nil:
					t.Fatalf("%s -> %s: packet lost", dir.from.host, dir.to.host)
				case !dir.want && p != nil:
					t.Fatalf("%s -> %s: packet arrived through the fault", dir.from.host, dir.to.host)
				case p != nil && string(p.Buf) != "ping":
					t.Fatalf("payload %q", p.Buf)
				case p != nil && time.Since(start) < tt.minLatency:
					t.Fatalf("packet arrived after %v, want >= %v", time.Since(start), tt.minLatency)
				}
			}
			st := nw.LinkStats("a", "b")
			if tt.aToB && st.PacketsSent != 1 || !tt.aToB && st.PacketsDropped != 1 {
				t.Fatalf("a->b stats %+v", st)
			}
		})
	}
}

func TestGossipStreams(t *testing.T) {
	nw := newNet(t)
	ga, gb := newTransport(t, nw, "a"), newTransport(t, nw, "b")

	c, err := ga.DialTimeout(gb.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sc net.Conn
	select {
	case sc = <-gb.StreamCh():
	case <-time.After(5 * time.Second):
		t.Fatal("no stream accepted")
	}
	defer sc.Close()
	if _, err := io.WriteString(c, "push-pull"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 9)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "push-pull" {
		t.Fatalf("stream read %q, %v", buf, err)
	}

	r := readErr(sc)
	nw.Cut("a", "b")
	if err := waitErr(t, r, "accepted stream after cut"); !errors.Is(err, ErrLinkDown) {
		t.Fatalf("accepted stream read after cut: %v", err)
	}
	if _, err := ga.DialTimeout(gb.Addr(), time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("stream dial over cut link: %v", err)
	}
	if st := nw.LinkStats("a", "b"); st.ConnsOpened != 1 || st.ConnsRefused != 1 || st.ConnsBroken != 1 {
		t.Fatalf("a->b stats %+v", st)
	}
}
