package channel

import (
	"bufio"
	"crypto/tls"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/pki"
)

// identityServer is a master m of rg1 that names its peers from their
// certificates (Identities), as every node with an identity runs, and
// records the sessions that ended.
func identityServer(t *testing.T, ca *testkit.CA) (*server, func() []Session) {
	t.Helper()
	var mu sync.Mutex
	var ended []Session
	s := startServerWith(t, func(c *ServerConfig) {
		c.TLS = ca.Node(t, "m", "rg1").ServerTLS()
		c.Identities = true
		c.IdleTimeout = time.Minute // a half-open session would live that long
		fn := c.Delegate.(*Funcs)
		fn.IdentifyFunc = func(cs *tls.ConnectionState) (string, string, bool) {
			id, ok := pki.PeerIdentity(cs)
			return id.Node, id.RG, ok
		}
		fn.SessionEndedFunc = func(s Session) { mu.Lock(); ended = append(ended, s); mu.Unlock() }
	})
	return s, func() []Session { mu.Lock(); defer mu.Unlock(); return slices.Clone(ended) }
}

// helloAs opens a member session by hand with tc, claiming node, reads the
// WELCOME and then sends nothing: from the server's side it is a session
// whose peer went silent (a host that died without a FIN).
func helloAs(t *testing.T, addr string, tc *tls.Config, node string) (net.Conn, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriter(c)
	if err := writeFrame(bw, fHello, encodeHello(hello{Version: Version, Role: RoleMember, Node: node, RG: "rg1"})); err != nil {
		c.Close()
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	ft, p, err := readFrame(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	if ft == fRefuse {
		c.Close()
		return nil, decodeRefuse(p)
	}
	c.SetReadDeadline(time.Time{})
	return c, nil
}

func countOf(names []string, n string) int {
	k := 0
	for _, x := range names {
		if x == n {
			k++
		}
	}
	return k
}

// TestOneSessionPerMember: a member restarted while its old session is
// half-open at the master takes its place at once (the old one is closed
// and ended); an intruder with a real certificate of the organisation for
// another node cannot claim the member's name; one holding a certificate
// for the member's own name (a second one, or its stolen key) replaces the
// member's session, never joins it, and is counted. At no moment does the
// master hold two sessions of one member.
func TestOneSessionPerMember(t *testing.T) {
	ca := testkit.NewCA(t)
	s, ended := identityServer(t, ca)
	a2 := ca.Node(t, "a2", "rg1")
	addr := s.Addr().String()

	// The old incarnation of a2: greeted, then silent.
	stale, err := helloAs(t, addr, a2.ClientTLS(), "a2")
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	waitFor(t, "the stale session registered", func() bool { return countOf(s.Members(), "a2") == 1 })

	// a2 restarted: its new client connects while the old session lives.
	db := &lsdb{}
	real := startClient(t, "a2", a2.ClientTLS(), db, func() []Observation {
		return []Observation{{Connector: "c1", Source: "a2", Target: "x:25", Up: true, At: time.Now()}}
	})
	real.SetMaster(addr)
	waitFor(t, "the restarted member's observations", func() bool { return len(s.db.observations()) > 0 })
	if got := s.Members(); countOf(got, "a2") != 1 {
		t.Fatalf("members after a2's restart: %v, want a2 once", got)
	}
	waitFor(t, "the stale session ended", func() bool { return len(ended()) == 1 })
	// What the master sent before (the whole LSDB) is still readable; then
	// the connection ends, long before the read deadline.
	stale.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := readFrame(stale)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the stale session is still served")
		}
		if err != nil {
			break
		}
	}
	if got := s.Stats().SessionsReplaced; got != 1 {
		t.Fatalf("SessionsReplaced = %d after the restart, want 1", got)
	}

	// An intruder with a real certificate for a3 claims a2: refused.
	a3 := ca.Node(t, "a3", "rg1")
	if c, err := helloAs(t, addr, a3.ClientTLS(), "a2"); err == nil {
		c.Close()
		t.Fatal("a session claiming a2 with a3's certificate was welcomed")
	}
	if got := s.Stats().SessionsReplaced; got != 1 {
		t.Fatalf("SessionsReplaced = %d after a refused claim, want 1", got)
	}

	// An intruder holding a certificate that names a2: it replaces a2's
	// session (the master cannot tell it from a2 restarted), and the two
	// never coexist.
	stolen := ca.Node(t, "a2", "rg1")
	in, err := helloAs(t, addr, stolen.ClientTLS(), "a2")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if got := s.Members(); countOf(got, "a2") > 1 {
			t.Fatalf("two sessions of a2 at once: %v", got)
		}
	}
	if got := s.Stats().SessionsReplaced; got < 2 {
		t.Fatalf("SessionsReplaced = %d after the intruder, want at least 2", got)
	}
	t.Logf("sessions replaced: %d, ended: %d", s.Stats().SessionsReplaced, len(ended()))
}
