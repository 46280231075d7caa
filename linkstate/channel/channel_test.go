package channel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/meshd/meshd/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// lsdb is a stand-in for the node's LSDB: a set of opaque records.
type lsdb struct {
	mu   sync.Mutex
	recs [][]byte
	obs  []Observation
	from []string
}

func (l *lsdb) Records() [][]byte { l.mu.Lock(); defer l.mu.Unlock(); return slices.Clone(l.recs) }
func (l *lsdb) add(recs ...[]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, recs...)
}
func (l *lsdb) observe(from Session, obs []Observation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.obs = append(l.obs, obs...)
	l.from = append(l.from, from.Node)
}
func (l *lsdb) observations() []Observation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.obs)
}
func (l *lsdb) count() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.recs) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Until(t, 5*time.Second, what, cond)
}

type server struct {
	*Server
	fn     *Funcs // the delegate; tests set more hooks before a member connects
	db     *lsdb
	master string
	mu     sync.Mutex
}

func (s *server) setMaster(m string) { s.mu.Lock(); s.master = m; s.mu.Unlock() }
func (s *server) getMaster() string  { s.mu.Lock(); defer s.mu.Unlock(); return s.master }

func startServer(t *testing.T, node string, tc *tls.Config, authorize func(string, net.Addr) bool) *server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{db: &lsdb{}, master: node}
	s.fn = &Funcs{MasterFunc: s.getMaster, AuthorizeFunc: authorize, RecordsFunc: s.db.Records, ObserveFunc: s.db.observe}
	s.Server = NewServer(ServerConfig{Listener: l, TLS: tc, Node: node, RG: "rg1", Delegate: s.fn, Logger: quiet})
	t.Cleanup(func() { s.Close() })
	return s
}

func startClient(t *testing.T, node string, tc *tls.Config, db *lsdb, obs func() []Observation) *Client {
	t.Helper()
	c := NewClient(ClientConfig{
		Node: node, RG: "rg1", TLS: tc, Logger: quiet,
		OnRecords: func(full bool, recs [][]byte) {
			if full {
				db.mu.Lock()
				db.recs = nil
				db.mu.Unlock()
			}
			db.add(recs...)
		},
		Observations: obs,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFullThenDeltasAndObservations(t *testing.T) {
	s := startServer(t, "m", nil, nil)
	s.db.add([]byte("rec-rg1-v1"), []byte("rec-rg2-v1"))
	held := []Observation{{Connector: "c1", Source: "n2", Target: "10.0.0.1:25", Up: false, At: time.UnixMilli(1700000000123).UTC()}}
	db := &lsdb{}
	c := startClient(t, "n2", nil, db, func() []Observation { return held })
	c.SetMaster(s.Addr().String())

	waitFor(t, "full LSDB at member", func() bool { return db.count() == 2 })
	waitFor(t, "held observations at master", func() bool { return len(s.db.observations()) == 1 })
	if got := s.db.observations()[0]; got != held[0] {
		t.Fatalf("observation = %+v, want %+v", got, held[0])
	}
	waitFor(t, "member registered", func() bool { return len(s.Members()) == 1 })

	s.db.add([]byte("rec-rg3-v1"))
	s.Push([][]byte{[]byte("rec-rg3-v1")})
	waitFor(t, "delta at member", func() bool { return db.count() == 3 })

	c.Observe(Observation{Connector: "c1", Source: "n2", Target: "10.0.0.1:25", Up: true, At: time.Now()})
	waitFor(t, "new observation at master", func() bool { return len(s.db.observations()) == 2 })
	if !s.db.observations()[1].Up {
		t.Fatal("second observation should be up")
	}
}

// TestPingsKeepIdleSession: a member that has nothing to send keeps its one
// session to the master for many idle timeouts because both sides ping;
// a member that pings less often than the master's idle timeout loses it
// (and reconnects). Run on pipes in a synctest bubble, with the default
// timers (client ping 10s, server idle timeout 30s): ten minutes pass on
// the bubble's clock, none on the wall clock.
func TestPingsKeepIdleSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		ping time.Duration
		kept bool
	}{
		{"default pings", 0, true},
		{"pings rarer than the idle timeout", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := testkit.NewPipeListener()
				db := &lsdb{}
				s := NewServer(ServerConfig{Listener: l, Node: "m", RG: "rg1", Logger: quiet, Delegate: Funcs{
					MasterFunc: func() string { return "m" }, RecordsFunc: db.Records, ObserveFunc: db.observe}})
				defer s.Close()
				c := NewClient(ClientConfig{Node: "n", RG: "rg1", Dial: l.Dial, PingInterval: tc.ping, Logger: quiet,
					OnRecords: func(bool, [][]byte) {}})
				defer c.Close()
				c.SetMaster("pipe")
				testkit.Until(t, time.Minute, "member registered", func() bool { return len(s.Members()) == 1 })
				time.Sleep(10 * time.Minute) // the bubble's clock: twenty idle timeouts
				sessions := s.Stats().ConnsAccepted
				if kept := sessions == 1; kept != tc.kept {
					t.Fatalf("%d sessions in 10 minutes, want the first one kept: %v", sessions, tc.kept)
				}
			})
		})
	}
}

func TestNonMasterRefusesAndClientFollowsNewMaster(t *testing.T) {
	a := startServer(t, "a", nil, nil)
	b := startServer(t, "b", nil, nil)
	a.setMaster("b")
	b.db.add([]byte("from-b"))

	_, _, err := dialHello(context.Background(), (&net.Dialer{}).DialContext, nil, a.Addr().String(),
		hello{Version: Version, Role: RoleMember, Node: "n", RG: "rg1"})
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != RefuseNotMaster || re.Text != "b" {
		t.Fatalf("dial non-master: %v, want refusal naming b", err)
	}

	db := &lsdb{}
	c := startClient(t, "n", nil, db, nil)
	c.SetMaster(a.Addr().String()) // refused, retried
	c.SetMaster(b.Addr().String())
	waitFor(t, "records from b", func() bool { return db.count() == 1 })

	// b stops being master: members are dropped and reconnect elsewhere.
	b.setMaster("a")
	a.setMaster("a")
	a.db.add([]byte("from-a-1"), []byte("from-a-2"))
	b.DropMembers()
	c.SetMaster(a.Addr().String())
	waitFor(t, "full LSDB from a replaces b's", func() bool { return db.count() == 2 })
}

func TestRefusals(t *testing.T) {
	s := startServer(t, "m", nil, func(node string, _ net.Addr) bool { return node == "friend" })
	addr := s.Addr().String()
	dial := (&net.Dialer{}).DialContext
	cases := []struct {
		name string
		h    hello
		code int
	}{
		{"unknown member", hello{Version: Version, Role: RoleMember, Node: "stranger", RG: "rg1"}, RefuseUnknownPeer},
		{"wrong rg", hello{Version: Version, Role: RoleMember, Node: "friend", RG: "rg9"}, RefuseWrongRG},
		{"future version", hello{Version: 99, Role: RoleMember, Node: "friend", RG: "rg1"}, RefuseVersion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := dialHello(context.Background(), dial, nil, addr, tc.h)
			var re *RefusedError
			if !errors.As(err, &re) || re.Code != tc.code {
				t.Fatalf("got %v, want refusal code %d", err, tc.code)
			}
		})
	}
	// Junk instead of a greeting.
	for _, junk := range [][]byte{[]byte("EHLO x\r\n\r\n\r\n"), {0, 0, 0, 3, 1, 'M', 'E'}, {0xff, 0xff, 0xff, 0xff, 1}} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(junk)
		conn.SetReadDeadline(time.Now().Add(12 * time.Second))
		typ, p, err := readFrame(conn)
		conn.Close()
		if err != nil || typ != fRefuse || decodeRefuse(p).Code != RefuseBadGreeting {
			t.Fatalf("junk %q: frame %d %v", junk, typ, err)
		}
	}
	if len(s.Members()) != 0 {
		t.Fatal("a refused peer was registered")
	}
}

func TestDump(t *testing.T) {
	s := startServer(t, "m", nil, nil)
	s.setMaster("other") // dumps are answered by any node
	s.db.add([]byte("r1"), []byte("r2"), []byte("r3"))
	recs, err := Dump(context.Background(), nil, nil, s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%s", recs) != "[r1 r2 r3]" {
		t.Fatalf("dump = %s", recs)
	}
}

func TestTLS(t *testing.T) {
	srvTLS, cliTLS := testTLS(t)
	s := startServer(t, "m", srvTLS, nil)
	s.db.add([]byte("secret-record"))
	db := &lsdb{}
	c := startClient(t, "n", cliTLS, db, nil)
	c.SetMaster(s.Addr().String())
	waitFor(t, "records over TLS", func() bool { return db.count() == 1 })
	// A plaintext client gets nothing.
	if _, err := Dump(context.Background(), nil, nil, s.Addr().String()); err == nil {
		t.Fatal("plaintext dump against a TLS listener succeeded")
	}
	if recs, err := Dump(context.Background(), nil, cliTLS, s.Addr().String()); err != nil || len(recs) != 1 {
		t.Fatalf("TLS dump: %v %d", err, len(recs))
	}
}

// testTLS is what two nodes of one organisation use on port 691: mutual
// TLS with pki identities.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	ca := testkit.NewCA(t)
	return ca.Node(t, "a1", "rga").ServerTLS(), ca.Node(t, "a2", "rga").ClientTLS()
}

func TestCodecs(t *testing.T) {
	h := hello{Version: Version, Role: RoleMember, Node: "n1", RG: "rg1"}
	if got, err := decodeHello(encodeHello(h)); err != nil || got != h {
		t.Fatalf("hello round trip: %+v %v", got, err)
	}
	recs := [][]byte{[]byte("a"), {}, []byte("ccc")}
	full, got, err := decodeRecords(encodeRecords(true, recs))
	if err != nil || !full || len(got) != 3 || string(got[2]) != "ccc" {
		t.Fatalf("records round trip: %v %q %v", full, got, err)
	}
	obs := []Observation{{Connector: "c", Source: "s", Target: "t:25", Up: true, At: time.UnixMilli(42).UTC()}}
	if got, err := decodeObservations(encodeObservations(obs)); err != nil || !slices.Equal(got, obs) {
		t.Fatalf("observations round trip: %+v %v", got, err)
	}
	bad := map[string][]byte{
		"hello magic":      []byte("MESHD692\x00\x01\x01\x00\x00\x00\x00"),
		"hello role":       append([]byte(magic), 0, 1, 7, 0, 0, 0, 0),
		"hello trailing":   append(encodeHello(h), 0),
		"records count":    {0, 0xff, 0xff, 0xff, 0xff},
		"records full=2":   {2, 0, 0, 0, 0},
		"records short":    {1, 0, 0, 0, 1, 0, 0, 0, 9, 'x'},
		"observations up":  append(encodeObservations(obs)[:len(encodeObservations(obs))-9], 2, 0, 0, 0, 0, 0, 0, 0, 0),
		"observations cnt": {0xff, 0xff, 0xff, 0xff},
		"string not utf8":  append([]byte(magic), 0, 1, 1, 0, 2, 0xff, 0xfe, 0, 0),
	}
	for name, p := range bad {
		var err error
		switch {
		case name[:5] == "hello" || name[:6] == "string":
			_, err = decodeHello(p)
		case name[:7] == "records":
			_, _, err = decodeRecords(p)
		default:
			_, err = decodeObservations(p)
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFrameLimits(t *testing.T) {
	var buf bytesBuffer
	bw := bufio.NewWriter(&buf)
	if err := writeFrame(bw, fRecords, make([]byte, MaxFrame)); err == nil {
		t.Fatal("oversized frame written")
	}
	if _, _, err := readFrame(&bytesBuffer{b: []byte{0, 0, 0, 0, 1}}); err == nil {
		t.Fatal("zero-length frame accepted")
	}
}

type bytesBuffer struct{ b []byte }

func (b *bytesBuffer) Write(p []byte) (int, error) { b.b = append(b.b, p...); return len(p), nil }
func (b *bytesBuffer) Read(p []byte) (int, error) {
	if len(b.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.b)
	b.b = b.b[n:]
	return n, nil
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeHello(hello{Version: 1, Role: RoleDump, Node: "x", RG: "y"}))
	f.Add(encodeRecords(false, [][]byte{[]byte("r")}))
	f.Add(encodeObservations([]Observation{{Connector: "c", Up: true}}))
	f.Fuzz(func(t *testing.T, p []byte) {
		if h, err := decodeHello(p); err == nil {
			if h2, err := decodeHello(encodeHello(h)); err != nil || h2 != h {
				t.Fatalf("hello does not round-trip: %+v", h)
			}
		}
		if full, recs, err := decodeRecords(p); err == nil {
			if _, recs2, err := decodeRecords(encodeRecords(full, recs)); err != nil || len(recs2) != len(recs) {
				t.Fatal("records do not round-trip")
			}
		}
		if obs, err := decodeObservations(p); err == nil {
			if _, err := decodeObservations(encodeObservations(obs)); err != nil {
				t.Fatal("observations do not round-trip")
			}
		}
		_ = decodeRefuse(p)
		_, _, _ = readFrame(&bytesBuffer{b: p})
	})
}

func TestMemberHandsRecordsToMaster(t *testing.T) {
	s := startServer(t, "m", nil, nil)
	var mu sync.Mutex
	var got []string
	s.fn.HandRecordsFunc = func(from Session, recs [][]byte) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			got = append(got, from.Node+":"+string(r))
		}
	}
	c := startClient(t, "n", nil, &lsdb{}, nil)
	c.SetMaster(s.Addr().String())
	waitFor(t, "member connected", func() bool { return len(s.Members()) == 1 })
	c.Hand([][]byte{[]byte("learned-rg7")})
	waitFor(t, "handed record at master", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1 && got[0] == "n:learned-rg7"
	})
}

func TestAdminThroughMember(t *testing.T) {
	s := startServer(t, "m", nil, nil)
	got := make(chan string, 1)
	s.fn.AdminFunc = func(from Session, connector string, st AdminState) {
		got <- from.Node + ":" + connector + ":" + st.String()
	}
	c := startClient(t, "n", nil, &lsdb{}, nil)
	if err := c.Admin("ab", AdminDown); !errors.Is(err, ErrNoSession) {
		t.Fatalf("admin without session: %v", err)
	}
	c.SetMaster(s.Addr().String())
	waitFor(t, "member connected", func() bool { return len(s.Members()) == 1 })
	waitFor(t, "admin sent", func() bool { return c.Admin("ab", AdminDrain) == nil })
	select {
	case g := <-got:
		if g != "n:ab:drain" {
			t.Fatalf("admin at master = %q", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("admin frame not received")
	}
	if _, _, err := decodeAdmin(encodeAdmin("x", 9)); err == nil {
		t.Fatal("unknown admin state accepted")
	}
}

// TestDropNotMembers: the master closes the session of a member that no
// longer counts, keeps the others, and a member that stops counting
// between its HELLO and its registration is refused, not registered.
func TestDropNotMembers(t *testing.T) {
	var mu sync.Mutex
	counted := map[string]bool{"n1": true, "n2": true}
	checks := map[string]int{}
	var stopAfterHello string // stops counting on its second Authorize
	s := startServer(t, "m", nil, func(node string, _ net.Addr) bool {
		mu.Lock()
		defer mu.Unlock()
		checks[node]++
		if node == stopAfterHello && checks[node] == 2 {
			return false
		}
		return counted[node]
	})
	for _, n := range []string{"n1", "n2"} {
		startClient(t, n, nil, &lsdb{}, nil).SetMaster(s.Addr().String())
	}
	waitFor(t, "both members registered", func() bool { return len(s.Members()) == 2 })
	mu.Lock()
	counted["n2"] = false
	mu.Unlock()
	isMember := func(node string) bool { mu.Lock(); defer mu.Unlock(); return counted[node] }
	if got := s.DropNotMembers(isMember); !slices.Equal(got, []string{"n2"}) {
		t.Fatalf("dropped %v, want [n2]", got)
	}
	if got := s.Members(); !slices.Equal(got, []string{"n1"}) {
		t.Fatalf("members %v after the drop, want [n1]", got)
	}

	mu.Lock()
	counted["n3"], stopAfterHello = true, "n3"
	mu.Unlock()
	_, _, err := dialHello(context.Background(), (&net.Dialer{}).DialContext, nil, s.Addr().String(),
		hello{Version: Version, Role: RoleMember, Node: "n3", RG: "rg1"})
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != RefuseUnknownPeer {
		t.Fatalf("member that stopped counting after its HELLO: %v, want refused as unknown", err)
	}
	if slices.Contains(s.Members(), "n3") {
		t.Fatal("a member refused after its HELLO stays registered")
	}
}
