package queue

import (
	"github.com/meshd/meshd/smtp/reply"

	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
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
