package node

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// ephemeralRange is the kernel's range of ports for outgoing connections
// (Linux: net.ipv4.ip_local_port_range); ok is false when it is unknown.
func ephemeralRange() (lo, hi int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo <= 0 || hi < lo {
		return 0, 0, false
	}
	return lo, hi, true
}

// reserveFixedPort holds a loopback port for a listener a test restarts
// on the same address (a node's mesh listener, which other nodes'
// connectors name). The port lies outside the ephemeral range when there
// is room below it: a port from that range ("127.0.0.1:0"), once its
// reservation or the node's listener is closed, may be taken as the local
// port of any outgoing connection on the machine, for as long as that
// connection lives, and the node's bind then fails with "address already
// in use" however long it retries. Only another explicit bind can take a
// port outside the range.
func reserveFixedPort(t testing.TB) net.Listener {
	t.Helper()
	if lo, _, ok := ephemeralRange(); ok && lo > 2048 {
		base := max(1024, lo-20000)
		for range 50 {
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+rand.IntN(lo-base))); err == nil {
				return l
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestFixedPortsOutsideEphemeralRange: the mesh listeners a test mesh
// fixes for restarts cannot be taken by an outgoing connection.
func TestFixedPortsOutsideEphemeralRange(t *testing.T) {
	lo, hi, ok := ephemeralRange()
	if !ok || lo <= 2048 {
		t.Skip("no ephemeral port range known, or no room below it")
	}
	for range 20 {
		l := reserveFixedPort(t)
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p >= lo && p <= hi {
			t.Fatalf("fixed port %d in the ephemeral range %d-%d", p, lo, hi)
		}
	}
}
