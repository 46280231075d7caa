package queue

import (
	"github.com/meshd/meshd/smtp/reply"

	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openQueue opens a queue in a fresh directory (or in memory) and closes it
// at the end of the test.
func openQueue(t testing.TB, opts Options) *Queue {
	t.Helper()
	if opts.Dir == "" && !opts.InMemory {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	q, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func env(id string, rcpts ...string) Envelope {
	e := Envelope{ID: id, From: "alice@example.test", Source: "smtp"}
	for _, r := range rcpts {
		e.Rcpts = append(e.Rcpts, Rcpt{Addr: r})
	}
	return e
}

func mustEnqueue(t testing.TB, q *Queue, e Envelope, body []byte) {
	t.Helper()
	if err := q.Enqueue(context.Background(), e, body); err != nil {
		t.Fatalf("Enqueue %s: %v", e.ID, err)
	}
}

func TestEnqueueGetBody(t *testing.T) {
	clk := newClock()
	q := openQueue(t, Options{Now: clk.Now})
	e := env("msg-00000001", "bob@example.test", "carol@example.test")
	e.Rcpts[0].Notify = []string{"FAILURE", "DELAY"}
	e.Rcpts[0].ORcpt = "rfc822;bob@example.test"
	e.Trace = []string{"rg1", "rg2"}
	e.Ret, e.EnvID, e.SMTPUTF8 = "HDRS", "env-1", true
	body := []byte("Subject: hi\r\n\r\nhello\r\n")
	mustEnqueue(t, q, e, body)

	m, err := q.Get(e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !m.ReceivedAt.Equal(clk.Now()) || m.Size != int64(len(body)) || m.Held || m.DelayNotified {
		t.Errorf("message = %+v", m)
	}
	if !slices.Equal(m.Trace, e.Trace) || m.Ret != "HDRS" || m.EnvID != "env-1" || !m.SMTPUTF8 {
		t.Errorf("envelope not kept: %+v", m.Envelope)
	}
	if len(m.Recipients) != 2 || m.Recipients[0].ORcpt != e.Rcpts[0].ORcpt ||
		!slices.Equal(m.Recipients[0].Notify, e.Rcpts[0].Notify) {
		t.Fatalf("recipients = %+v", m.Recipients)
	}
	for _, r := range m.Recipients {
		if r.State != Pending || r.Attempts != 0 || !r.NextAttempt.Equal(clk.Now()) {
			t.Errorf("recipient = %+v", r)
		}
	}
	got, err := q.Body(e.ID)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Body = %q, %v", got, err)
	}
	if _, err := q.Get("missing-00000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get missing: %v", err)
	}
	if _, err := q.Body("missing-00000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Body missing: %v", err)
	}
	if s := q.Stats(); s.Messages != 1 || s.Bytes != int64(len(body)) || !s.Oldest.Equal(clk.Now()) {
		t.Errorf("Stats = %+v", s)
	}
}

func TestEnqueueInvalid(t *testing.T) {
	q := openQueue(t, Options{InMemory: true})
	tests := []struct {
		name string
		env  Envelope
	}{
		{"no id", env("", "a@b")},
		{"short id", env("abc", "a@b")},
		{"slash", env("abc/defghij", "a@b")},
		{"upper", env("ABCDEFGHIJ", "a@b")},
		{"no rcpts", env("abcdefghij")},
		{"empty rcpt", env("abcdefghij", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := q.Enqueue(context.Background(), tt.env, nil); !errors.Is(err, ErrInvalid) {
				t.Errorf("Enqueue = %v, want ErrInvalid", err)
			}
		})
	}
	if s := q.Stats(); s.Messages != 0 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestDuplicate(t *testing.T) {
	clk := newClock()
	q := openQueue(t, Options{Now: clk.Now, DedupWindow: time.Hour})
	e := env("dup-00000001", "bob@example.test")
	mustEnqueue(t, q, e, []byte("one"))
	if err := q.Enqueue(context.Background(), e, []byte("two")); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second Enqueue = %v, want ErrDuplicate", err)
	}
	if b, _ := q.Body(e.ID); string(b) != "one" {
		t.Errorf("body replaced: %q", b)
	}
	// Still a duplicate after delivery removed it from the queue.
	if err := q.Record(e.ID, []Result{{Addr: "bob@example.test", Outcome: Delivered, Reply: reply.ParseOrText("250 ok")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(e.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delivered message still queued: %v", err)
	}
	clk.Add(59 * time.Minute)
	if err := q.Enqueue(context.Background(), e, []byte("three")); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("Enqueue after delivery = %v, want ErrDuplicate", err)
	}
	if s := q.Stats(); s.Messages != 0 || s.Bytes != 0 {
		t.Errorf("duplicate changed counters: %+v", s)
	}
	// After the window the ID is accepted again.
	clk.Add(2 * time.Minute)
	mustEnqueue(t, q, e, []byte("four"))
}

// TestDuplicateSameBatch sends the same ID from many goroutines at once:
// exactly one is stored, whether or not they share a transaction.
func TestDuplicateSameBatch(t *testing.T) {
	q := openQueue(t, Options{})
	for round := range 5 {
		id := fmt.Sprintf("same-batch-%d", round)
		const n = 20
		errs := make(chan error, n)
		start := make(chan struct{})
		for range n {
			go func() {
				<-start
				errs <- q.Enqueue(context.Background(), env(id, "x@example.test"), []byte("body"))
			}()
		}
		close(start)
		ok, dup := 0, 0
		for range n {
			switch err := <-errs; {
			case err == nil:
				ok++
			case errors.Is(err, ErrDuplicate):
				dup++
			default:
				t.Fatalf("Enqueue: %v", err)
			}
		}
		if ok != 1 || dup != n-1 {
			t.Fatalf("round %d: %d stored, %d duplicates", round, ok, dup)
		}
	}
	if s := q.Stats(); s.Messages != 5 || s.Bytes != 5*4 {
		t.Errorf("Stats = %+v", s)
	}
}

// TestDuplicateInOneTxn commits two enqueue ops for one ID in a single
// transaction: the second must see the first's pending write.
func TestDuplicateInOneTxn(t *testing.T) {
	q := openQueue(t, Options{InMemory: true})
	e := env("one-txn-0001", "x@example.test")
	o1, err := q.enqueueOp(e, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	o2, err := q.enqueueOp(e, []byte("bb"))
	if err != nil {
		t.Fatal(err)
	}
	// The committer goroutine is idle; committing here is the same code path.
	if n := q.commitSome([]*op{o1, o2}); n != 2 {
		t.Fatalf("commitSome took %d ops, want 2 in one transaction", n)
	}
	if err := <-o1.done; err != nil {
		t.Fatalf("first op: %v", err)
	}
	if err := <-o2.done; !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second op: %v, want ErrDuplicate", err)
	}
	if b, _ := q.Body(e.ID); string(b) != "a" {
		t.Errorf("body = %q", b)
	}
	if s := q.Stats(); s.Messages != 1 || s.Bytes != 1 {
		t.Errorf("Stats = %+v", s)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.idx.reserved != 0 || q.idx.reservedBytes != 0 {
		t.Errorf("reservations left: %d, %d", q.idx.reserved, q.idx.reservedBytes)
	}
}

func TestFull(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		bodies  []int
		wantErr []bool
	}{
		{"messages", Options{MaxMessages: 2}, []int{10, 10, 10}, []bool{false, false, true}},
		{"bytes", Options{MaxBytes: 100}, []int{60, 41, 40, 0}, []bool{false, true, false, false}},
		{"exact bytes", Options{MaxBytes: 100}, []int{100, 1}, []bool{false, true}},
		{"unbounded", Options{}, []int{1000, 1000, 1000}, []bool{false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.InMemory = true
			q := openQueue(t, tt.opts)
			for i, n := range tt.bodies {
				err := q.Enqueue(context.Background(), env(fmt.Sprintf("full-%04d", i), "a@b"), make([]byte, n))
				if got := errors.Is(err, ErrFull); got != tt.wantErr[i] || (err != nil && !got) {
					t.Fatalf("Enqueue #%d (%d bytes) = %v, want full=%v", i, n, err, tt.wantErr[i])
				}
			}
		})
	}
}

func TestFullFreedByDelete(t *testing.T) {
	q := openQueue(t, Options{InMemory: true, MaxMessages: 1})
	mustEnqueue(t, q, env("free-00000001", "a@b"), []byte("x"))
	if err := q.Enqueue(context.Background(), env("free-00000002", "a@b"), nil); !errors.Is(err, ErrFull) {
		t.Fatalf("Enqueue = %v, want ErrFull", err)
	}
	if err := q.Delete("free-00000001"); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, env("free-00000002", "a@b"), nil)
	if err := q.Delete("free-00000001"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v", err)
	}
}

// TestDeliveryLifecycle walks a message with three recipients through
// attempts with partial success.
func TestDeliveryLifecycle(t *testing.T) {
	clk := newClock()
	q := openQueue(t, Options{Now: clk.Now})
	id := "life-00000001"
	mustEnqueue(t, q, env(id, "a@x", "b@x", "c@x"), []byte("body"))

	next := clk.Now().Add(time.Minute)
	if err := q.Attempt(id, nil, next); err != nil {
		t.Fatal(err)
	}
	if due, _ := q.Due(clk.Now(), 0); len(due) != 0 {
		t.Fatalf("due right after Attempt: %d", len(due))
	}
	if at, ok := q.NextDue(); !ok || !at.Equal(next) {
		t.Fatalf("NextDue = %v, %v; want %v", at, ok, next)
	}
	err := q.Record(id, []Result{
		{Addr: "a@x", Outcome: Delivered, Reply: reply.ParseOrText("250 2.0.0 ok")},
		{Addr: "b@x", Outcome: PermFail, Reply: reply.ParseOrText("550 5.1.1 no such user")},
		{Addr: "c@x", Outcome: TempFail, Reply: reply.ParseOrText("451 4.3.0 try later")},
		{Addr: "nobody@x", Outcome: Delivered},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		state    RcptState
		attempts int
		lastErr  string
	}{
		{Delivered, 1, ""},
		{Failed, 1, "550 5.1.1 no such user"},
		{Pending, 1, "451 4.3.0 try later"},
	}
	for i, w := range want {
		r := m.Recipients[i]
		if r.State != w.state || r.Attempts != w.attempts || r.LastError != w.lastErr || !r.LastAttempt.Equal(clk.Now()) {
			t.Errorf("rcpt %d = %+v, want %+v", i, r, w)
		}
	}
	if !m.NextAttempt.Equal(next) {
		t.Errorf("NextAttempt = %v, want %v", m.NextAttempt, next)
	}
	// Repeating a result for a settled recipient changes nothing.
	if err := q.Record(id, []Result{{Addr: "b@x", Outcome: Delivered}}); err != nil {
		t.Fatal(err)
	}
	if m, _ := q.Get(id); m.Recipients[1].State != Failed {
		t.Errorf("settled recipient changed: %+v", m.Recipients[1])
	}

	clk.Add(time.Minute)
	due, err := q.Due(clk.Now(), 10)
	if err != nil || len(due) != 1 || due[0].ID != id {
		t.Fatalf("Due = %v, %v", due, err)
	}
	if err := q.Attempt(id, []string{"c@x"}, clk.Now().Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	final, err := q.RecordMessage(id, []Result{{Addr: "c@x", Outcome: Delivered, Reply: reply.ParseOrText("250 ok")}})
	if err != nil {
		t.Fatal(err)
	}
	if final.Recipients[2].State != Delivered || final.Recipients[2].Attempts != 2 || final.Recipients[1].State != Failed {
		t.Errorf("final = %+v", final.Recipients)
	}
	if _, err := q.Get(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("finished message still there: %v", err)
	}
	if _, err := q.Body(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("finished body still there: %v", err)
	}
	if s := q.Stats(); s.Messages != 0 || s.Bytes != 0 {
		t.Errorf("Stats = %+v", s)
	}
	if _, ok := q.NextDue(); ok {
		t.Error("NextDue with empty queue")
	}
	if err := q.Record(id, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Record on deleted = %v", err)
	}
	if err := q.Record("life-00000002", []Result{{Addr: "a@x"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Record with zero Outcome = %v", err)
	}
}

func TestExpire(t *testing.T) {
	q := openQueue(t, Options{InMemory: true})
	id := "expire-000001"
	mustEnqueue(t, q, env(id, "a@x", "b@x"), []byte("body"))
	m, err := q.Expire(id, []string{"a@x"}, "lifetime exceeded")
	if err != nil || m.Recipients[0].State != Expired || m.Recipients[1].State != Pending {
		t.Fatalf("Expire = %+v, %v", m, err)
	}
	m, err = q.Expire(id, nil, "lifetime exceeded")
	if err != nil || m.Recipients[1].State != Expired || m.Recipients[1].LastError != "lifetime exceeded" {
		t.Fatalf("Expire all = %+v, %v", m, err)
	}
	if _, err := q.Get(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired message still queued: %v", err)
	}
}

func drainNotify(q *Queue) {
	select {
	case <-q.Notify():
	default:
	}
}

func notified(q *Queue) bool {
	select {
	case <-q.Notify():
		return true
	default:
		return false
	}
}

func TestHoldReleaseRetryNotify(t *testing.T) {
	clk := newClock()
	q := openQueue(t, Options{Now: clk.Now})
	id := "hold-00000001"
	mustEnqueue(t, q, env(id, "a@x"), []byte("body"))
	if !notified(q) {
		t.Error("no notification after Enqueue")
	}
	if err := q.Hold(id); err != nil {
		t.Fatal(err)
	}
	if notified(q) {
		t.Error("notification after Hold")
	}
	if due, _ := q.Due(clk.Now(), 0); len(due) != 0 {
		t.Errorf("held message due")
	}
	if _, ok := q.NextDue(); ok {
		t.Error("NextDue counts a held message")
	}
	held := true
	if l, _ := q.List(Filter{Held: &held}); len(l) != 1 || !l[0].Held {
		t.Errorf("List(held) = %v", l)
	}
	held = false
	if l, _ := q.List(Filter{Held: &held}); len(l) != 0 {
		t.Errorf("List(not held) = %v", l)
	}
	if err := q.Release(id); err != nil {
		t.Fatal(err)
	}
	if !notified(q) {
		t.Error("no notification after Release")
	}
	if err := q.Attempt(id, nil, clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if due, _ := q.Due(clk.Now(), 0); len(due) != 0 {
		t.Error("due before its NextAttempt")
	}
	drainNotify(q)
	clk.Add(time.Second)
	if err := q.Retry(id); err != nil {
		t.Fatal(err)
	}
	if !notified(q) {
		t.Error("no notification after Retry")
	}
	if due, _ := q.Due(clk.Now(), 0); len(due) != 1 || !due[0].NextAttempt.Equal(clk.Now()) {
		t.Errorf("Due after Retry = %v", due)
	}
	if err := q.MarkDelayNotified(id); err != nil {
		t.Fatal(err)
	}
	if m, _ := q.Get(id); !m.DelayNotified {
		t.Error("DelayNotified not kept")
	}
	for name, f := range map[string]func(string) error{"Hold": q.Hold, "Release": q.Release, "Retry": q.Retry, "MarkDelayNotified": q.MarkDelayNotified} {
		if err := f("nope-00000000"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s(missing) = %v", name, err)
		}
	}
}

func TestDueOrderAndLimit(t *testing.T) {
	clk := newClock()
	q := openQueue(t, Options{Now: clk.Now, InMemory: true})
	base := clk.Now()
	// Enqueue 50 messages, then give each a NextAttempt i minutes after base
	// in a shuffled order.
	perm := rand.Perm(50)
	for i := range 50 {
		mustEnqueue(t, q, env(fmt.Sprintf("due-%06d", i), "a@x"), []byte("b"))
	}
	for i, p := range perm {
		if err := q.Attempt(fmt.Sprintf("due-%06d", i), nil, base.Add(time.Duration(p)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if at, ok := q.NextDue(); !ok || !at.Equal(base) {
		t.Fatalf("NextDue = %v %v", at, ok)
	}
	tests := []struct {
		now  time.Duration
		max  int
		want int
	}{
		{-time.Minute, 0, 0},
		{0, 0, 1},
		{10 * time.Minute, 0, 11},
		{10 * time.Minute, 5, 5},
		{100 * time.Minute, 0, 50},
		{100 * time.Minute, 7, 7},
	}
	for _, tt := range tests {
		due, err := q.Due(base.Add(tt.now), tt.max)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != tt.want {
			t.Fatalf("Due(+%v, %d) = %d messages, want %d", tt.now, tt.max, len(due), tt.want)
		}
		for i, m := range due {
			if want := base.Add(time.Duration(i) * time.Minute); !m.NextAttempt.Equal(want) {
				t.Fatalf("Due(+%v)[%d].NextAttempt = %v, want %v", tt.now, i, m.NextAttempt, want)
			}
		}
	}
}

// TestIndexDueMatchesBruteForce checks the heap walk against sorting on
// random indexes.
func TestIndexDueMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Unix(1e9, 0)
	for round := range 200 {
		x := newIndex()
		n := rng.IntN(60)
		for i := range n {
			m := &Message{Envelope: Envelope{ID: fmt.Sprintf("m%03d", i)}, Held: rng.IntN(5) == 0,
				Recipients: []Recipient{{State: Pending, NextAttempt: base.Add(time.Duration(rng.IntN(30)) * time.Second)}}}
			m.updateNext()
			x.put(m)
		}
		// Random updates and removals keep positions honest.
		for range rng.IntN(20) {
			id := fmt.Sprintf("m%03d", rng.IntN(n+1))
			if rng.IntN(2) == 0 {
				x.remove(id)
				continue
			}
			m := &Message{Envelope: Envelope{ID: id}, Held: rng.IntN(5) == 0,
				Recipients: []Recipient{{State: Pending, NextAttempt: base.Add(time.Duration(rng.IntN(30)) * time.Second)}}}
			m.updateNext()
			x.put(m)
		}
		now := base.Add(time.Duration(rng.IntN(30)) * time.Second)
		max := rng.IntN(10)
		var want []*item
		for _, it := range x.items {
			if it.dueable() && !it.next.After(now) {
				want = append(want, it)
			}
		}
		slices.SortFunc(want, func(a, b *item) int {
			if c := a.next.Compare(b.next); c != 0 {
				return c
			}
			return cmpString(a.id, b.id)
		})
		if max > 0 && len(want) > max {
			want = want[:max]
		}
		got := x.due(now, max)
		if len(got) != len(want) {
			t.Fatalf("round %d: due returned %d, want %d", round, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i].id {
				t.Fatalf("round %d: due[%d] = %s, want %s", round, i, got[i], want[i].id)
			}
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestReopenRebuildsState(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	q, err := Open(Options{Dir: dir, Now: clk.Now, Logger: quietLogger(), MaxMessages: 3})
	if err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, env("reopen-000001", "a@x", "b@x"), []byte("12345"))
	mustEnqueue(t, q, env("reopen-000002", "a@x"), []byte("123"))
	mustEnqueue(t, q, env("reopen-000003", "a@x"), []byte("1"))
	next := clk.Now().Add(time.Hour)
	if err := q.Attempt("reopen-000001", []string{"b@x"}, next); err != nil {
		t.Fatal(err)
	}
	if err := q.Hold("reopen-000002"); err != nil {
		t.Fatal(err)
	}
	if err := q.Record("reopen-000003", []Result{{Addr: "a@x", Outcome: Delivered}}); err != nil {
		t.Fatal(err)
	}
	before := q.Stats()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(context.Background(), env("reopen-000009", "a@x"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close = %v", err)
	}
	if _, err := q.Get("reopen-000001"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v", err)
	}
	if err := q.Hold("reopen-000001"); !errors.Is(err, ErrClosed) {
		t.Errorf("Hold after Close = %v", err)
	}

	q = openQueue(t, Options{Dir: dir, Now: clk.Now, MaxMessages: 3})
	if after := q.Stats(); after != before || after.Messages != 2 || after.Bytes != 8 {
		t.Fatalf("Stats after reopen = %+v, before %+v", after, before)
	}
	m, err := q.Get("reopen-000001")
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Recipients[1]; r.Attempts != 1 || !r.NextAttempt.Equal(next) || m.Recipients[0].Attempts != 0 {
		t.Errorf("attempt state lost: %+v", m.Recipients)
	}
	if m, _ := q.Get("reopen-000002"); m == nil || !m.Held {
		t.Errorf("hold lost: %+v", m)
	}
	if due, _ := q.Due(clk.Now(), 0); len(due) != 1 || due[0].ID != "reopen-000001" {
		t.Errorf("Due after reopen = %v", due)
	}
	// The delivered ID is still remembered, and the bound counts what is queued.
	if err := q.Enqueue(context.Background(), env("reopen-000003", "a@x"), nil); !errors.Is(err, ErrDuplicate) {
		t.Errorf("Enqueue delivered id after reopen = %v", err)
	}
	mustEnqueue(t, q, env("reopen-000004", "a@x"), nil)
	if err := q.Enqueue(context.Background(), env("reopen-000005", "a@x"), nil); !errors.Is(err, ErrFull) {
		t.Errorf("Enqueue over bound after reopen = %v", err)
	}
	if !notified(q) {
		t.Error("no notification after Enqueue")
	}
}

// TestBatchSplit makes badger's transaction limit small so concurrent
// enqueues cannot share one transaction; all must still be stored.
func TestBatchSplit(t *testing.T) {
	q := openQueue(t, Options{tune: func(o badger.Options) badger.Options {
		// 1 MiB memtable: batches are capped near 150 KiB, about 35 inline 4 KiB bodies.
		return o.WithMemTableSize(1 << 20).WithValueThreshold(64 << 10)
	}})
	const n = 300
	body := bytes.Repeat([]byte("x"), 4096)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- q.Enqueue(context.Background(), env(fmt.Sprintf("split-%06d", i), "a@x"), body)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := q.Stats(); s.Messages != n {
		t.Fatalf("Stats = %+v", s)
	}

	// Deterministically: 100 ops handed to one commitSome cannot fit; it
	// commits a prefix and leaves the rest for the next transaction.
	ops := make([]*op, 100)
	for i := range ops {
		o, err := q.enqueueOp(env(fmt.Sprintf("split2-%06d", i), "a@x"), body)
		if err != nil {
			t.Fatal(err)
		}
		ops[i] = o
	}
	first := q.commitSome(ops)
	if first < 1 || first >= len(ops) {
		t.Fatalf("commitSome committed %d of %d ops; want a proper prefix", first, len(ops))
	}
	q.commitAll(ops[first:])
	for i, o := range ops {
		if err := <-o.done; err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	if s := q.Stats(); s.Messages != n+len(ops) {
		t.Fatalf("Stats = %+v", s)
	}
	t.Logf("first transaction took %d of %d 4 KiB enqueues", first, len(ops))
	l, err := q.List(Filter{Limit: 10})
	if err != nil || len(l) != 10 {
		t.Fatalf("List = %d, %v", len(l), err)
	}
}

func TestEnqueueContextCanceled(t *testing.T) {
	q := openQueue(t, Options{InMemory: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := q.Enqueue(ctx, env("ctx-00000001", "a@x"), nil)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Enqueue = %v", err)
	}
	// Either way the reservation is released once the op settles.
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		r := q.idx.reserved
		q.mu.Unlock()
		if r == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reservation leaked: %d", r)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIndexDueFuncSkipsRefused checks that refused items neither appear nor
// count towards max, and that items below a refused one in the heap are
// still found.
func TestIndexDueFuncSkipsRefused(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Unix(1e9, 0)
	for round := range 200 {
		x := newIndex()
		n := rng.IntN(60)
		skip := map[string]bool{}
		for i := range n {
			id := fmt.Sprintf("m%03d", i)
			m := &Message{Envelope: Envelope{ID: id}, Held: rng.IntN(5) == 0,
				Recipients: []Recipient{{State: Pending, NextAttempt: base.Add(time.Duration(rng.IntN(30)) * time.Second)}}}
			m.updateNext()
			x.put(m)
			if rng.IntN(2) == 0 {
				skip[id] = true
			}
		}
		now := base.Add(time.Duration(rng.IntN(30)) * time.Second)
		max := rng.IntN(10)
		var want []*item
		for _, it := range x.items {
			if it.dueable() && !it.next.After(now) && !skip[it.id] {
				want = append(want, it)
			}
		}
		slices.SortFunc(want, func(a, b *item) int {
			if c := a.next.Compare(b.next); c != 0 {
				return c
			}
			return cmpString(a.id, b.id)
		})
		if max > 0 && len(want) > max {
			want = want[:max]
		}
		got := x.dueFunc(now, max, func(id string) bool { return !skip[id] })
		if len(got) != len(want) {
			t.Fatalf("round %d: dueFunc returned %d, want %d", round, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i].id {
				t.Fatalf("round %d: dueFunc[%d] = %s, want %s", round, i, got[i], want[i].id)
			}
		}
	}
}

func TestDueFuncLoadsOnlyWanted(t *testing.T) {
	clk := newClock()
	q, err := Open(Options{InMemory: true, Now: clk.Now, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	for _, id := range []string{"aaaaaaaa", "bbbbbbbb", "cccccccc"} {
		env := Envelope{ID: id, From: "a@x.test", Rcpts: []Rcpt{{Addr: "b@y.test"}}, ReceivedAt: clk.Now()}
		if err := q.Enqueue(ctx, env, []byte("Subject: t\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		max  int
		skip map[string]bool
		want []string
	}{
		{"all", 0, nil, []string{"aaaaaaaa", "bbbbbbbb", "cccccccc"}},
		{"skip first", 1, map[string]bool{"aaaaaaaa": true}, []string{"bbbbbbbb"}},
		{"skip all", 0, map[string]bool{"aaaaaaaa": true, "bbbbbbbb": true, "cccccccc": true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := q.DueFunc(clk.Now(), tt.max, func(id string) bool { return !tt.skip[id] })
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.ID)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("DueFunc = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestHandedOnDropsMarker: a message whose every recipient was handed on to
// other mesh nodes leaves no dedup marker (it was not delivered here, and a
// route change may bring the same copy back), in the commit that removes
// it, so it holds after a reopen; one recipient finished here keeps it.
func TestHandedOnDropsMarker(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir})
	ctx := context.Background()
	passed := Envelope{ID: "handed-0001", From: "a@x.test", Rcpts: []Rcpt{{Addr: "b@y.test"}, {Addr: "c@y.test"}}}
	mixed := Envelope{ID: "handed-0002", From: "a@x.test", Rcpts: []Rcpt{{Addr: "b@y.test"}, {Addr: "d@here.test"}}}
	for _, env := range []Envelope{passed, mixed} {
		if err := q.Enqueue(ctx, env, []byte("body")); err != nil {
			t.Fatal(err)
		}
	}
	// Handed on in two steps: the marker goes with the last one.
	if err := q.Record(passed.ID, []Result{{Addr: "b@y.test", Outcome: Delivered, HandedOn: true}}); err != nil {
		t.Fatal(err)
	}
	if err := q.Record(passed.ID, []Result{{Addr: "c@y.test", Outcome: Delivered, HandedOn: true}}); err != nil {
		t.Fatal(err)
	}
	if err := q.Record(mixed.ID, []Result{
		{Addr: "b@y.test", Outcome: Delivered, HandedOn: true},
		{Addr: "d@here.test", Outcome: Delivered},
	}); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, Options{Dir: dir})
	if err := q.Enqueue(ctx, passed, []byte("body")); err != nil {
		t.Fatalf("copy handed on to the mesh refused when it came back: %v", err)
	}
	if err := q.Enqueue(ctx, mixed, []byte("body")); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("copy delivered here in part accepted again: %v", err)
	}
}

// TestLargeBody: a body larger than badger's default value-log file (64 MiB)
// is stored when MaxBodyBytes says bodies that large are expected.
func TestLargeBody(t *testing.T) {
	q := openQueue(t, Options{Dir: t.TempDir(), MaxBodyBytes: 80 << 20})
	env := Envelope{ID: "large-body-0001", From: "a@x.test", Rcpts: []Rcpt{{Addr: "b@y.test"}}}
	body := bytes.Repeat([]byte("0123456789abcdef"), (70<<20)/16)
	if err := q.Enqueue(context.Background(), env, body); err != nil {
		t.Fatalf("70 MiB body: %v", err)
	}
	got, err := q.Body(env.ID)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body read back: %d bytes, %v", len(got), err)
	}
}

// TestBodyCache: a body read right after Enqueue comes from memory and is
// the same bytes; a message that leaves the queue leaves the cache; the
// cache holds at most its byte budget, oldest out first.
func TestBodyCache(t *testing.T) {
	q := openQueue(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	env := Envelope{ID: "cached-0001", From: "a@x.test", Rcpts: []Rcpt{{Addr: "b@y.test"}}}
	body := []byte("Subject: cached\r\n\r\nbody\r\n")
	if err := q.Enqueue(ctx, env, body); err != nil {
		t.Fatal(err)
	}
	if _, ok := q.bodies.get(env.ID); !ok {
		t.Fatal("enqueued body not cached")
	}
	got, err := q.Body(env.ID)
	if err != nil || !bytes.Equal(got, body) || cap(got) != len(got) {
		t.Fatalf("Body = %q (cap %d), %v", got, cap(got), err)
	}
	if err := q.Record(env.ID, []Result{{Addr: "b@y.test", Outcome: Delivered}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := q.bodies.get(env.ID); ok {
		t.Fatal("body of a finished message still cached")
	}
	if _, err := q.Body(env.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Body of a finished message: %v", err)
	}

	c := newBodyCache(1000)
	for i := range 20 {
		c.put(fmt.Sprintf("m%02d", i), make([]byte, 100))
	}
	if c.size > 1000 {
		t.Fatalf("cache holds %d bytes, budget 1000", c.size)
	}
	if _, ok := c.get("m00"); ok {
		t.Error("oldest body still cached past the budget")
	}
	if _, ok := c.get("m19"); !ok {
		t.Error("newest body not cached")
	}
	c.put("big", make([]byte, 600)) // more than a quarter of the budget
	if _, ok := c.get("big"); ok {
		t.Error("a body larger than a quarter of the budget was cached")
	}
}
