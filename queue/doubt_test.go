package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshd/meshd/smtp/reply"
)

func holds(t *testing.T, q *Queue, id string) Holding {
	t.Helper()
	h, err := q.Holds(id)
	if err != nil {
		t.Fatalf("Holds %s: %v", id, err)
	}
	return h
}

// Holds answers from committed state, across a reopen: queued, delivered
// (dedup marker), handed on whole (relayed marker), never seen.
func TestHoldsFromDurableState(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	q := openQueue(t, Options{Dir: dir, Now: clk.Now})
	mustEnqueue(t, q, env("copy-queued-1", "a@x.test"), []byte("one\r\n"))
	mustEnqueue(t, q, env("copy-delivered-1", "a@x.test"), []byte("two\r\n"))
	mustEnqueue(t, q, env("copy-relayed-1", "a@x.test"), []byte("three\r\n"))
	ok := *reply.New(250, reply.Enhanced{2, 0, 0}, "ok")
	if err := q.Record("copy-delivered-1", []Result{{Addr: "a@x.test", Outcome: Delivered, Reply: ok}}); err != nil {
		t.Fatal(err)
	}
	if err := q.Record("copy-relayed-1", []Result{{Addr: "a@x.test", Outcome: Delivered, Reply: ok, HandedOn: true}}); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, Options{Dir: dir, Now: clk.Now})
	for id, want := range map[string]Holding{
		"copy-queued-1": Queued, "copy-delivered-1": Done, "copy-relayed-1": Relayed, "copy-never-seen": Unknown,
	} {
		if got := holds(t, q, id); got != want {
			t.Errorf("Holds(%s) = %v, want %v", id, got, want)
		}
	}
	// The relayed marker does not make the copy a duplicate: a route
	// change may bring it back, and it is taken again.
	mustEnqueue(t, q, env("copy-relayed-1", "a@x.test"), []byte("three\r\n"))
	// Past the dedup window nothing is remembered.
	clk.Add(DefaultDedupWindow + time.Hour)
	if got := holds(t, q, "copy-delivered-1"); got != Unknown {
		t.Errorf("Holds after the window = %v, want unknown", got)
	}
}

// A recipient's doubt is stored with the message, keeps its first Since
// while the same hop stays in doubt, and goes with ClearDoubt or delivery.
func TestDoubtRecorded(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	q := openQueue(t, Options{Dir: dir, Now: clk.Now})
	mustEnqueue(t, q, env("msg-doubt-1", "a@x.test", "b@x.test"), []byte("body\r\n"))
	lost := *reply.New(451, reply.Enhanced{4, 4, 2}, "no reply after the final dot")
	t0 := clk.Now()
	d := &Doubt{Node: "a1", Addr: "127.0.0.1:2525", Channel: "127.0.0.1:691", CopyID: "copy-1234abcd", Since: t0}
	if err := q.Record("msg-doubt-1", []Result{{Addr: "a@x.test", Outcome: TempFail, Reply: lost, Doubt: d}}); err != nil {
		t.Fatal(err)
	}
	later := *d
	later.Since = t0.Add(time.Minute)
	if err := q.Record("msg-doubt-1", []Result{{Addr: "a@x.test", Outcome: TempFail, Reply: lost, Doubt: &later}}); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = openQueue(t, Options{Dir: dir, Now: clk.Now})
	m, err := q.Get("msg-doubt-1")
	if err != nil {
		t.Fatal(err)
	}
	got := m.Recipients[0].Doubt
	if got == nil || got.CopyID != d.CopyID || got.Node != "a1" || got.Channel != d.Channel || !got.Since.Equal(t0) {
		t.Fatalf("doubt after reopen = %+v, want %+v", got, d)
	}
	if m.Recipients[1].Doubt != nil {
		t.Fatalf("b@ has a doubt it never had: %+v", m.Recipients[1].Doubt)
	}
	if err := q.Record("msg-doubt-1", []Result{{Addr: "a@x.test", Outcome: TempFail, Reply: lost, ClearDoubt: true}}); err != nil {
		t.Fatal(err)
	}
	if m, _ := q.Get("msg-doubt-1"); m.Recipients[0].Doubt != nil {
		t.Fatalf("doubt after ClearDoubt = %+v", m.Recipients[0].Doubt)
	}
}

// AttemptVia records the hop in doubt in the attempt's commit; Redirect
// moves it to the next host (nil: to nobody); the attempt's outcome
// clears it unless the reply was lost; Since stays the attempt's.
func TestAttemptViaRecordsTheHop(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	q := openQueue(t, Options{Dir: dir, Now: clk.Now})
	mustEnqueue(t, q, env("msg-via-1", "a@x.test", "b@x.test"), []byte("body\r\n"))
	t0 := clk.Now()
	hop := &Doubt{Node: "a1", Addr: "127.0.0.1:2525", Channel: "127.0.0.1:691", CopyID: "copy-via1abcd"}
	if err := q.AttemptVia("msg-via-1", []string{"a@x.test"}, t0.Add(time.Minute), hop); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = openQueue(t, Options{Dir: dir, Now: clk.Now})
	m, err := q.Get("msg-via-1")
	if err != nil {
		t.Fatal(err)
	}
	if d := m.Recipients[0].Doubt; d == nil || d.Node != "a1" || d.CopyID != hop.CopyID || !d.Since.Equal(t0) || m.Recipients[0].Attempts != 1 {
		t.Fatalf("a@ after AttemptVia and a reopen: doubt %+v, attempts %d", d, m.Recipients[0].Attempts)
	}
	if m.Recipients[1].Doubt != nil || m.Recipients[1].Attempts != 0 {
		t.Fatalf("b@ was not attempted: %+v", m.Recipients[1])
	}
	clk.Add(time.Second)
	next := Doubt{Node: "a2", Addr: "127.0.0.1:2526", Channel: "127.0.0.1:692", CopyID: hop.CopyID}
	if err := q.Redirect("msg-via-1", []string{"a@x.test"}, &next); err != nil {
		t.Fatal(err)
	}
	m, _ = q.Get("msg-via-1")
	if d := m.Recipients[0].Doubt; d == nil || d.Node != "a2" || m.Recipients[0].Attempts != 1 {
		t.Fatalf("after Redirect: doubt %+v, attempts %d", d, m.Recipients[0].Attempts)
	}
	// The reply is lost: the same hop stays in doubt since the redirect.
	lost := *reply.New(451, reply.Enhanced{4, 4, 2}, "no reply after the final dot")
	unanswered := next
	unanswered.Since = clk.Now().Add(time.Second)
	if err := q.Record("msg-via-1", []Result{{Addr: "a@x.test", Outcome: TempFail, Reply: lost, Doubt: &unanswered}}); err != nil {
		t.Fatal(err)
	}
	m, _ = q.Get("msg-via-1")
	if d := m.Recipients[0].Doubt; d == nil || !d.Since.Equal(clk.Now()) {
		t.Fatalf("after a lost reply: doubt %+v, want Since %v", d, clk.Now())
	}
	if err := q.Redirect("msg-via-1", []string{"a@x.test"}, nil); err != nil {
		t.Fatal(err)
	}
	if m, _ := q.Get("msg-via-1"); m.Recipients[0].Doubt != nil {
		t.Fatalf("after Redirect(nil): doubt %+v", m.Recipients[0].Doubt)
	}
	// A refused attempt (ClearDoubt) and a delivered one settle the hop.
	if err := q.AttemptVia("msg-via-1", nil, clk.Now(), hop); err != nil {
		t.Fatal(err)
	}
	refused := *reply.New(451, reply.Enhanced{4, 3, 0}, "try later")
	if err := q.Record("msg-via-1", []Result{{Addr: "a@x.test", Outcome: TempFail, Reply: refused, ClearDoubt: true}}); err != nil {
		t.Fatal(err)
	}
	m, _ = q.Get("msg-via-1")
	if m.Recipients[0].Doubt != nil || m.Recipients[1].Doubt == nil {
		t.Fatalf("after a refusal of a@: doubts %+v, %+v", m.Recipients[0].Doubt, m.Recipients[1].Doubt)
	}
}

// After Halt nothing more is committed, as after kill -9: a reopened
// queue holds the state from before it.
func TestHaltCommitsNothingMore(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir})
	mustEnqueue(t, q, env("msg-halt-1", "a@x.test"), []byte("body\r\n"))
	q.Halt()
	ok := *reply.New(250, reply.Enhanced{2, 0, 0}, "ok")
	if err := q.Record("msg-halt-1", []Result{{Addr: "a@x.test", Outcome: Delivered, Reply: ok}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Halt: %v, want ErrClosed", err)
	}
	if err := q.Enqueue(context.Background(), env("msg-halt-2", "a@x.test"), []byte("body\r\n")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue after Halt: %v, want ErrClosed", err)
	}
	q.Close()
	q = openQueue(t, Options{Dir: dir})
	if m, err := q.Get("msg-halt-1"); err != nil || m.Recipients[0].State != Pending {
		t.Fatalf("msg-halt-1 after reopen: %+v, %v; want pending", m, err)
	}
	if _, err := q.Get("msg-halt-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("msg-halt-2 after reopen: %v, want not found", err)
	}
}

// While an Enqueue of an ID is still under way Holds does not answer
// Unknown (the copy may still commit here): ErrInFlight, and the asker
// asks again. Every settled Enqueue leaves no mark.
func TestHoldsWaitsForACommitUnderWay(t *testing.T) {
	q := openQueue(t, Options{InMemory: true})
	mustEnqueue(t, q, env("copy-settled-1", "a@x.test"), []byte("body\r\n"))
	if err := q.Enqueue(context.Background(), env("copy-settled-1", "a@x.test"), []byte("body\r\n")); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second Enqueue: %v, want ErrDuplicate", err)
	}
	q.mu.Lock()
	left := len(q.enqueuing)
	q.enqueuing["copy-landing-1"]++ // an Enqueue between reserve and its commit
	q.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d IDs still marked in flight after their Enqueues settled", left)
	}
	if _, err := q.Holds("copy-landing-1"); !errors.Is(err, ErrInFlight) {
		t.Fatalf("Holds of a copy whose commit is under way: %v, want ErrInFlight", err)
	}
	if h := holds(t, q, "copy-settled-1"); h != Queued {
		t.Fatalf("Holds(copy-settled-1) = %v, want queued", h)
	}
	q.mu.Lock()
	delete(q.enqueuing, "copy-landing-1")
	q.mu.Unlock()
	if h := holds(t, q, "copy-landing-1"); h != Unknown {
		t.Fatalf("Holds after the commit failed = %v, want unknown", h)
	}
}
