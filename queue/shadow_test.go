package queue

import (
	"github.com/meshd/meshd/smtp/reply"

	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// handOn records every Pending recipient of id as handed on to peer under
// copyID, shadowed.
func handOn(t *testing.T, q *Queue, id, copyID, peer string, expires time.Time, addrs ...string) *Message {
	t.Helper()
	var res []Result
	for _, a := range addrs {
		res = append(res, Result{Addr: a, Outcome: Delivered, HandedOn: true, Reply: reply.ParseOrText("250 ok")})
	}
	m, err := q.RecordHandOff(id, res, HandOff{CopyID: copyID, Peer: peer, Incarnation: "inc1", Expires: expires})
	if err != nil {
		t.Fatalf("RecordHandOff: %v", err)
	}
	return m
}

// A hand-off keeps a shadow in the commit that records it: no commit of its
// own, durable across a reopen, counted and listed.
func TestShadowWrittenWithHandOff(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	q := openQueue(t, Options{Dir: dir, Now: clk.Now})
	body := []byte("Subject: s\r\n\r\nshadowed body\r\n")
	if err := q.Enqueue(context.Background(), env("msg-00000001", "a@x", "b@x"), body); err != nil {
		t.Fatal(err)
	}
	txns0, _ := q.CommitStats()
	handOn(t, q, "msg-00000001", "copy-0000001", "n2", clk.Now().Add(time.Hour), "a@x", "b@x")
	txns1, _ := q.CommitStats()
	if txns1-txns0 != 1 {
		t.Fatalf("hand-off took %d commits, want 1 (the shadow rides on the record)", txns1-txns0)
	}
	if _, err := q.Get("msg-00000001"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("message still queued after hand-off: %v", err)
	}
	st := q.ShadowStats()
	if st.Count != 1 || st.Bytes <= int64(len(body)) {
		t.Fatalf("ShadowStats = %+v, want 1 shadow holding the body", st)
	}
	q.Close()

	q = openQueue(t, Options{Dir: dir, Now: clk.Now})
	if st2 := q.ShadowStats(); st2.Count != 1 || st2.Bytes != st.Bytes {
		t.Fatalf("after reopen ShadowStats = %+v, want %+v", st2, st)
	}
	sh, err := q.Shadows("n2")
	if err != nil || len(sh) != 1 {
		t.Fatalf("Shadows(n2) = %v, %v", sh, err)
	}
	if s := sh[0]; s.CopyID != "copy-0000001" || s.MessageID != "msg-00000001" || len(s.Envelope.Rcpts) != 2 || s.Incarnation != "inc1" {
		t.Fatalf("shadow = %+v", s)
	}
	if other, _ := q.Shadows("n3"); len(other) != 0 {
		t.Fatalf("Shadows(n3) = %v, want none", other)
	}
}

// Resubmitting brings the shadowed recipients back under the message's own
// ID with the same body; a released shadow is gone.
func TestShadowResubmitAndRelease(t *testing.T) {
	clk := newClock()
	q := openQueue(t, Options{InMemory: true, Now: clk.Now})
	body := []byte("Subject: r\r\n\r\nbody\r\n")
	for _, id := range []string{"msg-00000001", "msg-00000002"} {
		if err := q.Enqueue(context.Background(), env(id, "a@x", "b@x"), body); err != nil {
			t.Fatal(err)
		}
	}
	exp := clk.Now().Add(time.Hour)
	handOn(t, q, "msg-00000001", "copy-1", "n2", exp, "a@x", "b@x")
	// Only one of two recipients handed on: the message stays queued.
	handOn(t, q, "msg-00000002", "copy-2", "n2", exp, "a@x")

	if err := q.ResubmitShadow("copy-1"); err != nil {
		t.Fatal(err)
	}
	m, err := q.Get("msg-00000001")
	if err != nil {
		t.Fatalf("resubmitted message: %v", err)
	}
	for _, r := range m.Recipients {
		if r.State != Pending || r.HandedOn {
			t.Fatalf("recipient %+v not pending again", r)
		}
	}
	if got, err := q.Body("msg-00000001"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body after resubmit = %q, %v", got, err)
	}
	if err := q.ResubmitShadow("copy-2"); err != nil {
		t.Fatal(err)
	}
	m2, _ := q.Get("msg-00000002")
	if len(m2.Recipients) != 2 || m2.Recipients[0].State != Pending || m2.Recipients[1].State != Pending {
		t.Fatalf("partly handed-on message after resubmit: %+v", m2.Recipients)
	}
	if st := q.ShadowStats(); st.Count != 0 || st.Bytes != 0 {
		t.Fatalf("ShadowStats after resubmit = %+v", st)
	}
	if err := q.ResubmitShadow("copy-1"); !errors.Is(err, ErrNoShadow) {
		t.Fatalf("second resubmit: %v, want ErrNoShadow", err)
	}

	handOn(t, q, "msg-00000001", "copy-1", "n3", exp, "a@x", "b@x")
	if err := q.ReleaseShadow("copy-1"); err != nil {
		t.Fatal(err)
	}
	if st := q.ShadowStats(); st.Count != 0 {
		t.Fatalf("released shadow still counted: %+v", st)
	}
}

// Shadows expire with the message lifetime and never exceed their bound.
func TestShadowExpiryAndBound(t *testing.T) {
	clk := newClock()
	body := bytes.Repeat([]byte("x"), 1000)
	q := openQueue(t, Options{InMemory: true, Now: clk.Now, MaxShadowBytes: 3000})
	ids := []string{"msg-00000001", "msg-00000002", "msg-00000003"}
	for i, id := range ids {
		if err := q.Enqueue(context.Background(), env(id, "a@x"), body); err != nil {
			t.Fatal(err)
		}
		handOn(t, q, id, "copy-"+id, "n2", clk.Now().Add(time.Duration(i+1)*time.Hour), "a@x")
	}
	st := q.ShadowStats()
	if st.Count != 2 || st.Skipped != 1 || st.Bytes > 3000 {
		t.Fatalf("ShadowStats = %+v, want 2 kept, 1 skipped, at most 3000 bytes", st)
	}
	clk.Add(90 * time.Minute)
	n, err := q.ExpireShadows(clk.Now())
	if err != nil || n != 1 {
		t.Fatalf("ExpireShadows = %d, %v; want 1", n, err)
	}
	if ids := q.ShadowIDs(""); len(ids) != 1 || ids[0] != "copy-msg-00000002" {
		t.Fatalf("left = %v", ids)
	}
}

// The copies a peer reports gone further are released in one commit, not
// one per copy; a copy released before is skipped, not an error.
func TestReleaseShadowsOneCommit(t *testing.T) {
	clk := newClock()
	q := openQueue(t, Options{InMemory: true, Now: clk.Now})
	body := []byte("Subject: b\r\n\r\nbody\r\n")
	exp := clk.Now().Add(time.Hour)
	var copies []string
	for i := range 20 {
		id := fmt.Sprintf("msg-%08d", i)
		if err := q.Enqueue(context.Background(), env(id, "a@x"), body); err != nil {
			t.Fatal(err)
		}
		handOn(t, q, id, "copy-"+id, "n2", exp, "a@x")
		copies = append(copies, "copy-"+id)
	}
	if err := q.ReleaseShadow(copies[0]); err != nil {
		t.Fatal(err)
	}
	txns0, _ := q.CommitStats()
	n, err := q.ReleaseShadows(append(copies[:15:15], "copy-never-held", copies[1]))
	txns1, _ := q.CommitStats()
	if err != nil || n != 14 {
		t.Fatalf("ReleaseShadows = %d, %v; want the 14 still held", n, err)
	}
	if txns1-txns0 != 1 {
		t.Fatalf("releasing 14 shadows took %d commits, want 1", txns1-txns0)
	}
	if ids := q.ShadowIDs(""); !slices.Equal(ids, copies[15:]) {
		t.Fatalf("left = %v, want %v", ids, copies[15:])
	}
	if n, err := q.ReleaseShadows(copies[:15]); err != nil || n != 0 {
		t.Fatalf("releasing them again = %d, %v; want 0, nil", n, err)
	}
	if err := q.ReleaseShadow(copies[0]); !errors.Is(err, ErrNoShadow) {
		t.Fatalf("ReleaseShadow of a released copy: %v, want ErrNoShadow", err)
	}
}

// A hand-off keeps the shadow's body where the message had it: the commit
// does not write the body again, and the body goes with the last shadow
// that keeps it (released here, resubmitted or expired below).
func TestShadowKeepsBodyInPlace(t *testing.T) {
	clk := newClock()
	q := openQueue(t, Options{InMemory: true, Now: clk.Now})
	body := bytes.Repeat([]byte("kept body line\r\n"), 256) // 4 KiB
	exp := clk.Now().Add(time.Hour)
	for _, id := range []string{"msg-00000001", "msg-00000002"} {
		if err := q.Enqueue(context.Background(), env(id, "a@x", "b@x"), body); err != nil {
			t.Fatal(err)
		}
	}
	b0 := q.CommittedBytes()
	handOn(t, q, "msg-00000001", "copy-1", "n2", exp, "a@x", "b@x")
	if n := q.CommittedBytes() - b0; n >= uint64(len(body)) {
		t.Fatalf("the hand-off wrote %d bytes: the body (%d) again", n, len(body))
	}
	if _, err := q.Get("msg-00000001"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("message still queued after hand-off: %v", err)
	}
	if got, err := q.Body("msg-00000001"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("kept body = %d bytes, %v", len(got), err)
	}
	if st := q.ShadowStats(); st.Bytes <= int64(len(body)) {
		t.Fatalf("ShadowStats = %+v: the kept body is not counted", st)
	}
	if err := q.ReleaseShadow("copy-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Body("msg-00000001"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("body after its only shadow was released: %v, want ErrNotFound", err)
	}

	// Two copies of one message to two peers: the body stays until both
	// shadows are gone; a resubmission queues the message with it again.
	handOn(t, q, "msg-00000002", "copy-2a", "n2", exp, "a@x")
	handOn(t, q, "msg-00000002", "copy-2b", "n3", exp, "b@x")
	if err := q.ReleaseShadow("copy-2a"); err != nil {
		t.Fatal(err)
	}
	if got, err := q.Body("msg-00000002"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body with one of two shadows left = %d bytes, %v", len(got), err)
	}
	if err := q.ResubmitShadow("copy-2b"); err != nil {
		t.Fatal(err)
	}
	m, err := q.Get("msg-00000002")
	if err != nil || len(m.Recipients) != 1 || m.Recipients[0].Addr != "b@x" || m.Recipients[0].State != Pending {
		t.Fatalf("resubmitted message = %+v, %v", m, err)
	}
	if got, err := q.Body("msg-00000002"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("resubmitted body = %d bytes, %v", len(got), err)
	}
	delivered := []Result{{Addr: "b@x", Outcome: Delivered, Reply: reply.ParseOrText("250 ok")}}
	if err := q.Record("msg-00000002", delivered); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Body("msg-00000002"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("body after the resubmitted message was delivered: %v, want ErrNotFound", err)
	}
	if st := q.ShadowStats(); st.Count != 0 || st.Bytes != 0 {
		t.Fatalf("ShadowStats = %+v, want none", st)
	}
}

// An expired shadow takes the body it alone kept; a reopened queue counts
// kept bodies as the running one did.
func TestShadowKeptBodyExpiresAndReopens(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	q := openQueue(t, Options{Dir: dir, Now: clk.Now})
	body := bytes.Repeat([]byte("x"), 3000)
	for i, id := range []string{"msg-00000001", "msg-00000002"} {
		if err := q.Enqueue(context.Background(), env(id, "a@x"), body); err != nil {
			t.Fatal(err)
		}
		handOn(t, q, id, "copy-"+id, "n2", clk.Now().Add(time.Duration(i+1)*time.Hour), "a@x")
	}
	st := q.ShadowStats()
	q.Close()
	q = openQueue(t, Options{Dir: dir, Now: clk.Now})
	if st2 := q.ShadowStats(); st2.Count != st.Count || st2.Bytes != st.Bytes {
		t.Fatalf("after reopen ShadowStats = %+v, want %+v", st2, st)
	}
	clk.Add(90 * time.Minute)
	if n, err := q.ExpireShadows(clk.Now()); err != nil || n != 1 {
		t.Fatalf("ExpireShadows = %d, %v; want 1", n, err)
	}
	if _, err := q.Body("msg-00000001"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("body of the expired shadow: %v, want ErrNotFound", err)
	}
	if got, err := q.Body("msg-00000002"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body of the shadow still held = %d bytes, %v", len(got), err)
	}
}

// A copy handed on whole may come back under the same ID (a route change):
// its new body takes the key the shadow kept, so the shadow gets the old
// body in its own value first, and a resubmission sends what was handed on.
func TestShadowKeptBodyOutlivesReenqueue(t *testing.T) {
	clk := newClock()
	q := openQueue(t, Options{InMemory: true, Now: clk.Now})
	first := []byte("X-Meshd-Age: 1s\r\nSubject: c\r\n\r\nbody\r\n")
	again := []byte("X-Meshd-Age: 9s\r\nX-Meshd-Trace: rgb\r\nSubject: c\r\n\r\nbody\r\n")
	exp := clk.Now().Add(time.Hour)
	if err := q.Enqueue(context.Background(), env("msg-00000001", "a@x"), first); err != nil {
		t.Fatal(err)
	}
	handOn(t, q, "msg-00000001", "copy-1", "n2", exp, "a@x")
	if err := q.Enqueue(context.Background(), env("msg-00000001", "a@x"), again); err != nil {
		t.Fatalf("the copy back under its ID: %v", err)
	}
	if got, _ := q.Body("msg-00000001"); !bytes.Equal(got, again) {
		t.Fatalf("queued body = %q, want the new one", got)
	}
	delivered := []Result{{Addr: "a@x", Outcome: Delivered, Reply: reply.ParseOrText("250 ok")}}
	if err := q.Record("msg-00000001", delivered); err != nil {
		t.Fatal(err)
	}
	if err := q.ResubmitShadow("copy-1"); err != nil {
		t.Fatal(err)
	}
	if got, err := q.Body("msg-00000001"); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("resubmitted body = %q, %v; want what was handed on, %q", got, err, first)
	}
}

// A shadow written before bodies were kept carries its body in its value:
// it is still resubmitted with it, and released without touching b/.
func TestShadowWithBodyInValueStillRead(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	q := openQueue(t, Options{Dir: dir, Now: clk.Now})
	body := []byte("Subject: old\r\n\r\nold shadow\r\n")
	e := env("msg-00000001", "a@x")
	s := &Shadow{HandOff: HandOff{CopyID: "copy-old", Peer: "n2", Expires: clk.Now().Add(time.Hour)},
		MessageID: "msg-00000001", Envelope: e, HandedAt: clk.Now(), Size: int64(len(body))}
	v, err := encodeShadow(s, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.db.Update(func(txn *badger.Txn) error { return txn.Set(shadowKey("copy-old"), v) }); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = openQueue(t, Options{Dir: dir, Now: clk.Now})
	if st := q.ShadowStats(); st.Count != 1 || st.Bytes != int64(len(v)) {
		t.Fatalf("ShadowStats = %+v, want the one shadow of %d bytes", st, len(v))
	}
	if err := q.ResubmitShadow("copy-old"); err != nil {
		t.Fatal(err)
	}
	if got, err := q.Body("msg-00000001"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body = %q, %v", got, err)
	}
}

// A shadow records its body's length, read from the cache of recent bodies
// or, after a restart, from the store; a hand-off whose body is missing
// fails rather than keep a shadow without a body.
func TestShadowKeptBodySize(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	q := openQueue(t, Options{Dir: dir, Now: clk.Now})
	body := bytes.Repeat([]byte("y"), 1234)
	e := env("msg-00000001", "a@x")
	e.HopHeader = []byte("Received: from peer.test by here\r\n")
	for _, id := range []string{"msg-00000001", "msg-00000002"} {
		e.ID = id
		if err := q.Enqueue(context.Background(), e, body); err != nil {
			t.Fatal(err)
		}
	}
	exp := clk.Now().Add(time.Hour)
	handOn(t, q, "msg-00000001", "copy-1", "n2", exp, "a@x") // body in the cache
	q.Close()
	q = openQueue(t, Options{Dir: dir, Now: clk.Now})
	handOn(t, q, "msg-00000002", "copy-2", "n2", exp, "a@x") // body read from the store
	sh, err := q.Shadows("")
	if err != nil || len(sh) != 2 {
		t.Fatalf("Shadows = %v, %v", sh, err)
	}
	for _, s := range sh {
		if s.Size != int64(len(body)) || !s.BodyKept {
			t.Fatalf("shadow %s: Size %d, BodyKept %v; want %d, true", s.CopyID, s.Size, s.BodyKept, len(body))
		}
	}

	if err := q.Enqueue(context.Background(), env("msg-00000003", "a@x"), body); err != nil {
		t.Fatal(err)
	}
	q.bodies.drop("msg-00000003")
	if err := q.db.Update(func(txn *badger.Txn) error { return txn.Delete(bodyKey("msg-00000003")) }); err != nil {
		t.Fatal(err)
	}
	res := []Result{{Addr: "a@x", Outcome: Delivered, HandedOn: true, Reply: reply.ParseOrText("250 ok")}}
	if _, err := q.RecordHandOff("msg-00000003", res, HandOff{CopyID: "copy-3", Peer: "n2", Expires: exp}); err == nil {
		t.Fatal("hand-off without a body kept a shadow")
	}
}

// A shadow that keeps its body in place must not be readable by a build
// from before bodies were kept: that build decoded the length word as is
// and took the rest of the value for the body, so it would resubmit the
// message empty. With the flag, the length is past the end and it refuses
// to open the queue (naming the key) instead; this build reads both.
func TestKeptShadowRefusedByOlderDecoder(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	q := openQueue(t, Options{Dir: dir, Now: clk.Now})
	body := []byte("Subject: kept\r\n\r\nkept in place\r\n")
	if err := q.Enqueue(context.Background(), env("msg-00000001", "a@x"), body); err != nil {
		t.Fatal(err)
	}
	handOn(t, q, "msg-00000001", "copy-1", "n2", clk.Now().Add(time.Hour), "a@x")
	var v []byte
	if err := q.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(shadowKey("copy-1"))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The decoder of the build before (110b186): length word, bound, JSON.
	if n := binary.BigEndian.Uint32(v); uint64(n) <= uint64(len(v)-4) {
		t.Fatalf("a kept-body shadow's length word %#x is within its %d bytes: an older build would resubmit it with the empty rest as its body", n, len(v))
	}
	s, at, err := decodeShadowHeader(v)
	if err != nil || !s.BodyKept || at != len(v) {
		t.Fatalf("decodeShadowHeader = %+v, %d, %v; want the kept-body shadow, its header ending the value (%d)", s, at, err, len(v))
	}
	// Framing and header that disagree are refused, not guessed at.
	bad := slices.Clone(v)
	binary.BigEndian.PutUint32(bad, binary.BigEndian.Uint32(v)&^shadowBodyKept)
	if _, _, err := decodeShadowHeader(bad); err == nil {
		t.Fatal("a shadow whose header says kept but whose length word does not was decoded")
	}
	q.Close()
	q = openQueue(t, Options{Dir: dir, Now: clk.Now})
	if err := q.ResubmitShadow("copy-1"); err != nil {
		t.Fatal(err)
	}
	if got, err := q.Body("msg-00000001"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("resubmitted body = %q, %v; want %q", got, err, body)
	}
}
