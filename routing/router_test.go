package routing

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/linkstate"
)

// fakeClock fires AfterFunc callbacks only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	armed  []time.Duration // every AfterFunc delay, in order
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
	fired   bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	c.armed = append(c.armed, d)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

// Advance moves time forward and runs the callbacks that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.stopped && !t.fired && !t.at.After(c.now) {
			t.fired = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// pending returns the delays of timers not yet fired or stopped.
func (c *fakeClock) pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
	for _, t := range c.timers {
		if !t.stopped && !t.fired {
			out = append(out, t.at.Sub(c.now))
		}
	}
	return out
}

func (c *fakeClock) armedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.armed)
}

// waitFor polls cond until it holds or 5s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Until(t, 5*time.Second, what, cond)
}

func waitChanged(t *testing.T, r *Router) {
	t.Helper()
	select {
	case <-r.Changed():
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a table swap")
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// recordsWith returns records in which RG a delivers domain locally.
func recordsWith(domain string) []*linkstate.Record {
	return []*linkstate.Record{{RG: "a", Members: []linkstate.Member{{Name: "a1"}},
		AddressSpaces: []linkstate.AddressSpace{{Pattern: domain}}}}
}

func routes(tb *Table, domain string) bool {
	_, err := tb.Route("m", domain)
	return err == nil
}

func TestRouterHoldDownBatchesAndGrows(t *testing.T) {
	defer goleak.VerifyNone(t)
	clk := newFakeClock()
	var swaps []uint64
	var mu sync.Mutex
	r, err := NewRouter(Self{Node: "a1", RG: "a"}, recordsWith("v0.test"), RouterOptions{
		Clock: clk, Logger: quietLogger(),
		OnSwap: func(tb *Table) { mu.Lock(); swaps = append(swaps, tb.Generation()); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !routes(r.Table(), "v0.test") {
		t.Fatal("initial table not computed")
	}

	// A burst of three updates is one computation with the last records.
	r.Update(recordsWith("v1.test"))
	waitFor(t, "hold-down armed", func() bool { return len(clk.pending()) == 1 })
	r.Update(recordsWith("v2.test"))
	r.Update(recordsWith("v3.test"))
	if p := clk.pending(); p[0] != DefaultHoldInitial {
		t.Fatalf("first hold = %v, want %v", p[0], DefaultHoldInitial)
	}
	clk.Advance(DefaultHoldInitial - time.Nanosecond)
	if routes(r.Table(), "v3.test") {
		t.Fatal("table swapped before the hold-down expired")
	}
	clk.Advance(time.Nanosecond)
	waitChanged(t, r)
	tb := r.Table()
	if !routes(tb, "v3.test") || routes(tb, "v1.test") || tb.Generation() != 1 {
		t.Fatalf("after burst: generation %d, v3 %v, v1 %v", tb.Generation(), routes(tb, "v3.test"), routes(tb, "v1.test"))
	}
	// A stray wake-up left by the batched updates must not arm another
	// timer, since nothing is pending: armedCount below checks it.

	// Updates that keep coming right after each computation double the
	// hold up to the maximum.
	wantHolds := []time.Duration{10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, ms := range wantHolds {
		h := ms * time.Millisecond
		r.Update(recordsWith("burst.test"))
		waitFor(t, "hold armed", func() bool { return len(clk.pending()) == 1 })
		if p := clk.pending()[0]; p != h {
			t.Fatalf("burst step %d: hold %v, want %v", i, p, h)
		}
		if s := r.Stats(); s.Hold != h {
			t.Fatalf("stats hold %v, want %v", s.Hold, h)
		}
		clk.Advance(h)
		waitChanged(t, r)
	}

	// After a quiet period of more than twice the hold, it resets.
	clk.Advance(2*DefaultHoldMax + time.Millisecond)
	r.Update(recordsWith("quiet.test"))
	waitFor(t, "hold armed", func() bool { return len(clk.pending()) == 1 })
	if p := clk.pending()[0]; p != DefaultHoldInitial {
		t.Fatalf("after quiet: hold %v, want %v", p, DefaultHoldInitial)
	}
	clk.Advance(DefaultHoldInitial)
	waitChanged(t, r)
	if !routes(r.Table(), "quiet.test") {
		t.Fatal("quiet update not applied")
	}
	st := r.Stats()
	if want := uint64(1 + len(wantHolds) + 1); st.Computations != want || r.Table().Generation() != want {
		t.Fatalf("computations %d (generation %d), want %d", st.Computations, r.Table().Generation(), want)
	}
	if n := clk.armedCount(); n != len(wantHolds)+2 {
		t.Fatalf("%d timers armed, want %d (one per batch)", n, len(wantHolds)+2)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(swaps) != int(st.Computations) || swaps[len(swaps)-1] != st.Computations {
		t.Fatalf("OnSwap saw %v", swaps)
	}
}

func TestRouterCloseStopsTimerAndDropsPending(t *testing.T) {
	defer goleak.VerifyNone(t)
	clk := newFakeClock()
	r, err := NewRouter(Self{Node: "a1", RG: "a"}, nil, RouterOptions{Clock: clk, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	r.Update(recordsWith("x.test"))
	waitFor(t, "hold armed", func() bool { return len(clk.pending()) == 1 })
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if len(clk.pending()) != 0 {
		t.Fatal("timer still armed after Close")
	}
	clk.Advance(time.Second)
	r.Update(recordsWith("y.test")) // ignored after Close
	if err := r.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if r.Table() == nil || r.Table().Generation() != 0 {
		t.Fatal("table changed after Close")
	}
}

func TestRouterRealClock(t *testing.T) {
	defer goleak.VerifyNone(t)
	r, err := NewRouter(Self{Node: "a1", RG: "a"}, nil, RouterOptions{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Table().Route("m", "x.test"); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("empty table: %v", err)
	}
	r.Update(recordsWith("x.test"))
	waitChanged(t, r)
	if !routes(r.Table(), "x.test") {
		t.Fatal("update not applied")
	}
}

func TestNewRouterValidates(t *testing.T) {
	if _, err := NewRouter(Self{}, nil, RouterOptions{}); err == nil {
		t.Error("empty self accepted")
	}
	if _, err := NewRouter(Self{Node: "n", RG: "r"}, nil, RouterOptions{HoldInitial: time.Second, HoldMax: time.Millisecond}); err == nil {
		t.Error("max below initial accepted")
	}
}

// TestRouterConcurrentReaders: readers route on whatever table is current
// while updates stream in (run with -race).
func TestRouterConcurrentReaders(t *testing.T) {
	defer goleak.VerifyNone(t)
	r, err := NewRouter(Self{Node: "a1", RG: "a"}, recordsWith("d0.test"),
		RouterOptions{HoldInitial: 100 * time.Microsecond, HoldMax: time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tb := r.Table()
				_, _ = tb.Route("m", "d0.test")
				_ = tb.Routes()
			}
		}()
	}
	for i := 1; i <= 50; i++ {
		r.Update(recordsWith(fmt.Sprintf("d%d.test", i)))
	}
	waitFor(t, "last update applied", func() bool { return routes(r.Table(), "d50.test") })
	close(stop)
	wg.Wait()
}
