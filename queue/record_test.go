package queue

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/smtp/reply"
)

func randomMessage(r *rand.Rand) *Message {
	str := func() string {
		if r.IntN(4) == 0 {
			return ""
		}
		parts := []string{"a", "bob@example.test", "é", "250 2.0.0 ok", "\x00", strings.Repeat("x", 300), "rg1"}
		var b strings.Builder
		for range 1 + r.IntN(3) {
			b.WriteString(parts[r.IntN(len(parts))])
		}
		return b.String()
	}
	strs := func() []string {
		if r.IntN(3) == 0 {
			return nil
		}
		out := make([]string, 1+r.IntN(3))
		for i := range out {
			out[i] = str()
		}
		return out
	}
	zones := []*time.Location{time.UTC, time.FixedZone("", 2*3600), time.FixedZone("", -5*3600-1800), time.Local}
	tm := func() time.Time {
		if r.IntN(4) == 0 {
			return time.Time{}
		}
		return time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
	}
	rcpt := func() Rcpt { return Rcpt{Addr: str(), Notify: strs(), ORcpt: str()} }
	m := &Message{Envelope: Envelope{
		ID: str(), From: str(), Ret: str(), EnvID: str(), SMTPUTF8: r.IntN(2) == 0, EightBit: r.IntN(2) == 0,
		ReceivedAt: tm(), Trace: strs(), Source: str(), ClientAddr: str(), AuthUser: str(), Origin: str(), MessageID: str(),
	}, Held: r.IntN(2) == 0, Size: r.Int64N(1 << 40), DelayNotified: r.IntN(2) == 0}
	if h := str(); h != "" {
		m.HopHeader, m.PeerFields = []byte(h), r.IntN(400)
	}
	for range r.IntN(4) {
		m.Rcpts = append(m.Rcpts, rcpt())
	}
	for range r.IntN(4) {
		m.Recipients = append(m.Recipients, Recipient{Rcpt: rcpt(), State: RcptState(r.IntN(4)), Attempts: r.IntN(100),
			NextAttempt: tm(), LastError: str(), LastReply: str(), LastAttempt: tm(), HandedOn: r.IntN(2) == 0})
	}
	if r.IntN(2) == 0 { // version 5's mesh age (docs/shadow.md), with or without a doubt before it
		m.MeshAge = time.Duration(r.Int64N(1<<40)) * time.Millisecond
		m.Suspect = r.IntN(2) == 0
		if len(m.Recipients) > 0 && r.IntN(2) == 0 {
			m.Recipients[0].Doubt = &Doubt{Node: str(), Addr: str(), Channel: str(), CopyID: str(), Since: tm()}
		}
	}
	m.updateNext()
	return m
}

// v4 turns a version-5 record without hops in doubt, mesh age or suspect
// flag (three zero bytes at its end) into the version-4 record of the
// same message.
func v4(t *testing.T, rec []byte) []byte {
	t.Helper()
	if !bytes.HasSuffix(rec, []byte{0, 0, 0}) {
		t.Fatal("version-5 record does not end in three zero bytes")
	}
	return rec[:len(rec)-3]
}

// sameMessage compares through JSON, which spells out times with their
// offsets, so two records are equal when they say the same thing.
func sameMessage(t *testing.T, a, b *Message) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// TestRecordRoundTrip: every field of random messages survives the binary
// record; records written as JSON by earlier versions still read.
func TestRecordRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 3000 {
		m := randomMessage(r)
		rec, err := encodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		if rec[0] != recordBinary {
			t.Fatalf("record version %d", rec[0])
		}
		got, err := decodeMessage(rec)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !sameMessage(t, m, got) {
			a, _ := json.Marshal(m)
			b, _ := json.Marshal(got)
			t.Fatalf("message %d changed:\n%s\n%s", i, a, b)
		}
		old, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err = decodeMessage(append([]byte{recordJSON}, old...))
		if err != nil || !sameMessage(t, m, got) {
			t.Fatalf("message %d from a version-1 record: %v", i, err)
		}
	}
}

// TestRecordVersion2StillReads: records written before Envelope.HopHeader
// and PeerFields existed (version 3: the same layout without them) read
// with both empty, and so do those written before Origin and MessageID
// (version 2: without those as well); every other field is intact.
func TestRecordVersion2StillReads(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 500 {
		m := randomMessage(r)
		m.HopHeader, m.PeerFields = nil, 0
		m.MeshAge, m.Suspect = 0, false
		for i := range m.Recipients {
			m.Recipients[i].Doubt = nil
		}
		rec, err := encodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		rec = v4(t, rec)
		// An empty hop header and a zero (one zero byte each) end a
		// version-4 record; two empty strings before them, a version-3 one.
		if !bytes.HasSuffix(rec, []byte{0, 0}) {
			t.Fatalf("message %d: record does not end in an empty hop header and a zero", i)
		}
		v3 := append([]byte{recordBinaryV3}, rec[1:len(rec)-2]...)
		got, err := decodeMessage(v3)
		if err != nil {
			t.Fatalf("message %d from a version-3 record: %v", i, err)
		}
		if !sameMessage(t, m, got) {
			t.Fatalf("message %d changed in a version-3 record", i)
		}
		m.Origin, m.MessageID = "", ""
		if rec, err = encodeMessage(m); err != nil {
			t.Fatal(err)
		}
		rec = v4(t, rec)
		if !bytes.HasSuffix(rec, []byte{0, 0, 0, 0}) {
			t.Fatalf("message %d: record does not end in four zero bytes", i)
		}
		v2 := append([]byte{recordBinaryV2}, rec[1:len(rec)-4]...)
		got, err = decodeMessage(v2)
		if err != nil {
			t.Fatalf("message %d from a version-2 record: %v", i, err)
		}
		if !sameMessage(t, m, got) {
			t.Fatalf("message %d changed in a version-2 record", i)
		}
	}
}

// TestRecordRefusesDamage: a cut or extended record is an error, never a
// panic or a silently different message.
func TestRecordRefusesDamage(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		rec, err := encodeMessage(randomMessage(r))
		if err != nil {
			t.Fatal(err)
		}
		for n := 1; n < len(rec); n++ {
			if _, err := decodeMessage(rec[:n]); err == nil {
				t.Fatalf("record cut to %d of %d bytes decoded", n, len(rec))
			}
		}
		if _, err := decodeMessage(append(bytes.Clone(rec), 0)); err == nil {
			t.Fatal("record with a trailing byte decoded")
		}
	}
	for _, bad := range [][]byte{nil, {}, {0}, {3}, {recordBinary, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, err := decodeMessage(bad); err == nil {
			t.Errorf("record %x decoded", bad)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 8 {
		rec, err := encodeMessage(randomMessage(r))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec)
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		m, err := decodeMessage(rec)
		if err != nil || rec[0] != recordBinary {
			return
		}
		// What decodes survives another round trip unchanged.
		again, err := encodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeMessage(again)
		if err != nil || !sameMessage(t, m, m2) {
			t.Fatalf("decoded record changes on a second round trip (%v):\n%x\n%x", err, rec, again)
		}
	})
}

func BenchmarkRecord(b *testing.B) {
	m := &Message{Envelope: Envelope{ID: "bench-0000000001", From: "sender@bench.test",
		Rcpts: []Rcpt{{Addr: "rcpt@remote.bench.test"}}, ReceivedAt: time.Now(), Source: "smtp", ClientAddr: "127.0.0.1:45678"},
		Recipients: []Recipient{{Rcpt: Rcpt{Addr: "rcpt@remote.bench.test"}, Attempts: 1, NextAttempt: time.Now(),
			LastReply: "250 2.0.0 Ok", LastAttempt: time.Now()}}, Size: 4400}
	jsonRec, _ := json.Marshal(m)
	jsonRec = append([]byte{recordJSON}, jsonRec...)
	binRec, _ := encodeMessage(m)
	b.Run("decode/binary", func(b *testing.B) {
		for b.Loop() {
			_, _ = decodeMessage(binRec)
		}
	})
	b.Run("decode/json", func(b *testing.B) {
		for b.Loop() {
			_, _ = decodeMessage(jsonRec)
		}
	})
	b.Run("encode/binary", func(b *testing.B) {
		for b.Loop() {
			_, _ = encodeMessage(m)
		}
	})
	b.Run("encode/json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(m)
		}
	})
}

// TestRecordBeforeReplyType: a record written before attempt results
// carried a reply.Reply (testdata/record-2026-12.hex) still decodes, and
// its reply strings read back as the codes they were written from.
func TestRecordBeforeReplyType(t *testing.T) {
	h, err := os.ReadFile("testdata/record-2026-12.hex")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := hex.DecodeString(strings.TrimSpace(string(h)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeMessage(rec)
	if err != nil {
		t.Fatalf("old record: %v", err)
	}
	if len(m.Recipients) != 2 || m.Recipients[1].LastReply != "250 2.0.0 OK queued as x" {
		t.Fatalf("old record decoded as %+v", m.Recipients)
	}
	got := reply.ParseOrText(m.Recipients[0].LastError)
	if !got.Same(reply.TempLoop("")) || got.Text != "next hop refused a loop; waiting for another route (554 5.4.6 Routing loop detected)" {
		t.Fatalf("old LastError reads as %#v", got)
	}
	// What an attempt records now is the same string.
	res := Result{Reply: got}
	if res.Reply.String() != m.Recipients[0].LastError {
		t.Fatalf("reply %q recorded as %q, was %q", got, res.Reply.String(), m.Recipients[0].LastError)
	}
	// Re-encoded it is the same record in version 5: the same bytes, then
	// the four fields version 2 did not have (Origin, MessageID, HopHeader,
	// PeerFields), empty.
	again, err := encodeMessage(m)
	want := append(append([]byte{recordBinary}, rec[1:]...), 0, 0, 0, 0, 0, 0, 0)
	if err != nil || rec[0] != recordBinaryV2 || !bytes.Equal(again, want) {
		t.Fatalf("old record re-encodes differently (%v)", err)
	}
}
