package netem

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// echoServer listens on host and echoes lines back. Errors seen by the accepted ends are sent on
// errs (buffered, never blocks).
type echoServer struct {
	addr string
	ln   net.Listener
	errs chan error
	wg   sync.WaitGroup
}

func startEcho(t *testing.T, h *Host) *echoServer {
	t.Helper()
	ln, err := h.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &echoServer{addr: ln.Addr().String(), ln: ln, errs: make(chan error, 100)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				_, err := io.Copy(c, c)
				if err == nil {
					err = io.EOF
				}
				select {
				case s.errs <- err:
				default:
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func newNet(t *testing.T) *Network {
	t.Helper()
	n := New(Options{Seed: 7})
	t.Cleanup(func() { n.Close() })
	return n
}

func dial(t *testing.T, h *Host, addr string) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp", addr)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// roundTrip writes a line and reads it back with a deadline.
func roundTrip(c net.Conn, line string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != line+"\n" {
		return errors.New("echo mismatch: " + got)
	}
	return nil
}

func mustRefused(t *testing.T, err error, reason error) {
	t.Helper()
	if err == nil {
		t.Fatal("dial succeeded, want refused")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) || !errors.Is(err, reason) {
		t.Fatalf("dial error %v: want ECONNREFUSED and %v", err, reason)
	}
	var fe *FaultError
	if !errors.As(err, &fe) {
		t.Fatalf("dial error %v is not a *FaultError", err)
	}
}

// waitErr waits for an error on errs.
func waitErr(t *testing.T, errs <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no error within 5s", what)
		return nil
	}
}

// readErr starts a read on c and returns its outcome on a channel.
func readErr(c net.Conn) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 16))
		ch <- err
	}()
	return ch
}

func TestCutBreaksExistingAndRefusesNew(t *testing.T) {
	nw := newNet(t)
	a, b := nw.Host("a"), nw.Host("b")
	srv := startEcho(t, b)

	c, err := dial(t, a, srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(c, "hello"); err != nil {
		t.Fatal(err)
	}
	pending := readErr(c)

	nw.Cut("a", "b")
	err = waitErr(t, pending, "dialer read after cut")
	if !errors.Is(err, ErrLinkDown) || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("dialer read error %v: want ErrLinkDown and ECONNRESET", err)
	}
	if err := waitErr(t, srv.errs, "server side after cut"); err == io.EOF {
		t.Fatalf("server saw a clean EOF; want a reset")
	}

	// Refused at once (ErrLinkDown), not left to time out.
	_, err = dial(t, a, srv.addr)
	mustRefused(t, err, ErrLinkDown)
	_, err = dial(t, b, srv.addr) // b to itself is unaffected
	if err != nil {
		t.Fatalf("self dial during cut: %v", err)
	}

	nw.Heal("a", "b")
	c2, err := dial(t, a, srv.addr)
	if err != nil {
		t.Fatalf("dial after heal: %v", err)
	}
	if err := roundTrip(c2, "again"); err != nil {
		t.Fatalf("echo after heal: %v", err)
	}

	st := nw.LinkStats("a", "b")
	if st.ConnsOpened != 2 || st.ConnsRefused != 1 || st.ConnsBroken != 1 {
		t.Fatalf("stats a->b = %+v; want opened 2, refused 1, broken 1", st)
	}
	if st.Bytes != uint64(len("hello\nagain\n")) {
		t.Fatalf("bytes a->b = %d", st.Bytes)
	}
	if back := nw.LinkStats("b", "a"); back.Bytes != st.Bytes {
		t.Fatalf("bytes b->a = %d, want %d", back.Bytes, st.Bytes)
	}
}

func TestFaultMatrix(t *testing.T) {
	hosts := []string{"a", "b", "c", "d"}
	tests := []struct {
		name  string
		fault func(nw *Network)
		down  [][2]string // pairs (dialer, listener) that must be refused; all others pass
	}{
		{"none", func(*Network) {}, nil},
		{"cut", func(nw *Network) { nw.Cut("a", "b") }, [][2]string{{"a", "b"}, {"b", "a"}}},
		{"one way breaks tcp both ways", func(nw *Network) { nw.CutOneWay("c", "d") }, [][2]string{{"c", "d"}, {"d", "c"}}},
		{"partition", func(nw *Network) { nw.Partition([]string{"a", "b"}, []string{"c"}) },
			[][2]string{{"a", "c"}, {"c", "a"}, {"b", "c"}, {"c", "b"}}},
		{"isolate", func(nw *Network) { nw.Isolate("d") },
			[][2]string{{"a", "d"}, {"b", "d"}, {"c", "d"}, {"d", "a"}, {"d", "b"}, {"d", "c"}}},
		{"isolate undone", func(nw *Network) { nw.Isolate("d"); nw.Unisolate("d") }, nil},
		{"heal all", func(nw *Network) {
			nw.Partition([]string{"a"}, []string{"b", "c", "d"})
			nw.Isolate("b")
			nw.HealAll()
		}, nil},
		{"heal one pair of a partition", func(nw *Network) {
			nw.Partition([]string{"a"}, []string{"b", "c"})
			nw.Heal("b", "a")
		}, [][2]string{{"a", "c"}, {"c", "a"}}},
		{"drop p=1", func(nw *Network) { nw.Drop("b", "c", 1) }, [][2]string{{"b", "c"}, {"c", "b"}}},
		{"drop p=0", func(nw *Network) { nw.Drop("b", "c", 1); nw.Drop("b", "c", 0) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nw := newNet(t)
			addrs := map[string]string{}
			for _, h := range hosts {
				addrs[h] = startEcho(t, nw.Host(h)).addr
			}
			tt.fault(nw)
			down := map[[2]string]bool{}
			for _, p := range tt.down {
				down[p] = true
			}
			for _, from := range hosts {
				for _, to := range hosts {
					c, err := dial(t, nw.Host(from), addrs[to])
					if down[[2]string{from, to}] {
						if err == nil {
							t.Errorf("%s -> %s: dial succeeded, want refused", from, to)
						} else if !errors.Is(err, syscall.ECONNREFUSED) {
							t.Errorf("%s -> %s: %v, want ECONNREFUSED", from, to, err)
						}
						continue
					}
					if err != nil {
						t.Errorf("%s -> %s: %v", from, to, err)
						continue
					}
					if err := roundTrip(c, from+to); err != nil {
						t.Errorf("%s -> %s echo: %v", from, to, err)
					}
				}
			}
		})
	}
}

func TestPartitionBreaksExisting(t *testing.T) {
	nw := newNet(t)
	srv := startEcho(t, nw.Host("c"))
	ca, err := dial(t, nw.Host("a"), srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := dial(t, nw.Host("b"), srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	ra := readErr(ca)
	nw.Partition([]string{"a"}, []string{"c"})
	if err := waitErr(t, ra, "a's read"); !errors.Is(err, ErrLinkDown) {
		t.Fatalf("a's read: %v", err)
	}
	if err := roundTrip(cb, "still"); err != nil {
		t.Fatalf("b (not partitioned) lost its connection: %v", err)
	}
}

func TestDropIsSeededAndDeterministic(t *testing.T) {
	pattern := func(seed uint64) []bool {
		nw := New(Options{Seed: seed})
		defer nw.Close()
		srv := startEcho(t, nw.Host("b"))
		defer srv.ln.Close()
		nw.Drop("a", "b", 0.5)
		var out []bool
		for range 40 {
			c, err := nw.Host("a").DialContext(context.Background(), "tcp", srv.addr)
			if err == nil {
				c.Close()
			} else if !errors.Is(err, ErrDropped) {
				t.Fatalf("dial: %v", err)
			}
			out = append(out, err == nil)
		}
		return out
	}
	p1, p2 := pattern(99), pattern(99)
	ok := 0
	for i := range p1 {
		if p1[i] != p2[i] {
			t.Fatalf("same seed, different decisions at dial %d: %v vs %v", i, p1, p2)
		}
		if p1[i] {
			ok++
		}
	}
	if ok == 0 || ok == len(p1) {
		t.Fatalf("p=0.5 gave %d/%d successes", ok, len(p1))
	}
}

func TestDelay(t *testing.T) {
	const d = 60 * time.Millisecond
	nw := newNet(t)
	srv := startEcho(t, nw.Host("b"))
	nw.Delay("a", "b", d)

	start := time.Now()
	c, err := dial(t, nw.Host("a"), srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < d {
		t.Fatalf("dial took %v, want >= %v", el, d)
	}
	start = time.Now()
	if err := roundTrip(c, "slow"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 2*d {
		t.Fatalf("round trip took %v, want >= %v (write and read delayed)", el, 2*d)
	}

	// A read deadline shorter than the delay times out; the data is returned later.
	if _, err := io.WriteString(c, "x\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(d / 4))
	_, err = c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read under delay with short deadline: %v, want timeout", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 8)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "x\n" {
		t.Fatalf("held data: %q, %v", buf[:n], err)
	}

	nw.Delay("a", "b", 0)
	start = time.Now()
	if err := roundTrip(c, "fast"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el >= 2*d {
		t.Logf("round trip without delay took %v (loaded machine?)", el)
	}
}

func TestBlackhole(t *testing.T) {
	nw := newNet(t)
	srv := startEcho(t, nw.Host("b"))
	c, err := dial(t, nw.Host("a"), srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	nw.Blackhole("a", "b")

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = nw.Host("a").DialContext(ctx, "tcp", srv.addr)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial into blackhole: %v, want timeout", err)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("dial into blackhole returned after %v, before its deadline", el)
	}

	c.SetDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = io.WriteString(c, "lost?\n")
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write into blackhole: %v, want timeout", err)
	}

	// A read that waits without deadline is released by Heal; then traffic flows.
	done := make(chan error, 1)
	go func() {
		c.SetDeadline(time.Time{})
		done <- roundTrip(c, "after")
	}()
	select {
	case err := <-done:
		t.Fatalf("round trip through blackhole finished: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	nw.Heal("a", "b")
	if err := waitErr(t, done, "round trip after heal"); err != nil {
		t.Fatalf("round trip after heal: %v", err)
	}
}

func TestFlap(t *testing.T) {
	nw := newNet(t)
	srv := startEcho(t, nw.Host("b"))
	nw.Flap("a", "b", 30*time.Millisecond)

	sawUp, sawDown := false, false
	deadline := time.Now().Add(5 * time.Second)
	for !(sawUp && sawDown) && time.Now().Before(deadline) {
		c, err := nw.Host("a").DialContext(context.Background(), "tcp", srv.addr)
		if err == nil {
			sawUp = true
			c.Close()
		} else if errors.Is(err, ErrLinkDown) {
			sawDown = true
		} else {
			t.Fatalf("dial: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // pacing between probes, not a wait for a condition
	}
	if !sawUp || !sawDown {
		t.Fatalf("flap: sawUp=%v sawDown=%v", sawUp, sawDown)
	}
	nw.Heal("a", "b")
	for i := range 20 {
		c, err := dial(t, nw.Host("a"), srv.addr)
		if err != nil {
			t.Fatalf("dial %d after heal of flap: %v", i, err)
		}
		c.Close()
	}
	var downs, ups int
	for _, ev := range nw.Events() {
		switch ev.Kind {
		case "flap-down":
			downs++
		case "flap-up":
			ups++
		}
	}
	if ups == 0 {
		t.Fatalf("no flap-up events: %v", nw.Events())
	}
}

func TestCrashRestart(t *testing.T) {
	nw := newNet(t)
	a, b := nw.Host("a"), nw.Host("b")
	ln, err := b.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	accepted := make(chan net.Conn, 1)
	acceptErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acceptErr <- err
			return
		}
		accepted <- c
		_, err = ln.Accept()
		acceptErr <- err
	}()
	c, err := dial(t, a, addr)
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	defer sc.Close()
	srvRead := readErr(sc)
	cliRead := readErr(c)

	nw.Crash("b")
	if err := waitErr(t, acceptErr, "accept after crash"); err == nil {
		t.Fatal("accept succeeded after crash")
	}
	if err := waitErr(t, cliRead, "a's read"); !errors.Is(err, ErrHostDown) {
		t.Fatalf("a's read after b crashed: %v", err)
	}
	if err := waitErr(t, srvRead, "b's read"); !errors.Is(err, ErrHostDown) {
		t.Fatalf("b's read after crash: %v", err)
	}
	_, err = dial(t, a, addr)
	mustRefused(t, err, ErrHostDown)
	other := startEcho(t, a)
	if _, err := dial(t, b, other.addr); !errors.Is(err, ErrHostDown) {
		t.Fatalf("crashed host dialed: %v", err)
	}
	if _, err := b.Listen("tcp", addr); !errors.Is(err, ErrHostDown) {
		t.Fatalf("crashed host listened: %v", err)
	}
	if !nw.Crashed("b") {
		t.Fatal("Crashed(b) = false")
	}

	nw.Restart("b")
	ln2, err := b.Listen("tcp", addr) // same address, as a restarted node would
	if err != nil {
		t.Fatalf("listen after restart: %v", err)
	}
	ln2.Close()
	srv := startEcho(t, b)
	c2, err := dial(t, a, srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(c2, "back"); err != nil {
		t.Fatal(err)
	}
	if owner, ok := nw.Owner(srv.addr); !ok || owner != "b" {
		t.Fatalf("Owner(%s) = %q, %v", srv.addr, owner, ok)
	}
}

func TestExternalAddress(t *testing.T) {
	nw := newNet(t)
	// A plain listener owned by no host: only the dialer's crash matters.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	nw.Isolate("a")
	if _, err := dial(t, nw.Host("a"), ln.Addr().String()); err != nil {
		t.Fatalf("isolated host to external address: %v", err)
	}
	nw.Crash("a")
	if _, err := dial(t, nw.Host("a"), ln.Addr().String()); !errors.Is(err, ErrHostDown) {
		t.Fatalf("crashed host to external address: %v", err)
	}
}

func TestCloseAndEvents(t *testing.T) {
	nw := New(Options{Seed: 1})
	srv := startEcho(t, nw.Host("b"))
	c, err := dial(t, nw.Host("a"), srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	nw.Flap("a", "c", time.Hour)
	nw.Delay("a", "b", time.Millisecond)
	r := readErr(c)
	if err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, r, "read after Close"); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	if _, err := dial(t, nw.Host("a"), srv.addr); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial after Close: %v", err)
	}
	evs := nw.Events()
	if len(evs) != 2 || evs[0].Kind != "flap" || evs[1].Kind != "delay" || evs[1].Detail != "1ms" {
		t.Fatalf("events: %v", evs)
	}
	if s := evs[1].String(); s == "" {
		t.Fatal("empty event string")
	}
	if err := nw.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestEventLogBounded(t *testing.T) {
	var clock time.Time
	nw := New(Options{MaxEvents: 3, Now: func() time.Time { clock = clock.Add(time.Second); return clock }})
	defer nw.Close()
	nw.Cut("a", "b")
	nw.Delay("a", "c", time.Millisecond)
	nw.Drop("b", "c", 2) // clamped to 1
	nw.Isolate("d")
	nw.Cut("x", "x") // no-op: a host is never cut from itself
	evs := nw.Events()
	if len(evs) != 3 || evs[0].Kind != "delay" || evs[1].Detail != "p=1" || evs[2].Kind != "isolate" {
		t.Fatalf("events %v", evs)
	}
	if !evs[0].Time.Before(evs[2].Time) {
		t.Fatalf("events not in order: %v", evs)
	}
	for _, h := range []string{"b", "a"} {
		nw.Host(h)
	}
	if got := strings.Join(nw.Hosts(), ","); got != "a,b" {
		t.Fatalf("Hosts() = %s", got)
	}
}
