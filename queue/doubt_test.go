package queue

import (
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
