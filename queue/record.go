package queue

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// A stored message record starts with its format version:
//
//	1  JSON of Message (written by earlier versions; still read)
//	2  the binary layout of appendMessage without its last two fields
//	   (Envelope.Origin and MessageID; written by earlier versions, still read)
//	3  the binary layout of appendMessage without its last two fields
//	   (Envelope.HopHeader and PeerFields; written by earlier versions,
//	   still read)
//	4  the binary layout of appendMessage up to its hops in doubt, which
//	   follow only when there is one (written by earlier versions, still read)
//	5  the binary layout of appendMessage, written now: the count of hops
//	   in doubt always, then the copy's mesh age and suspect flag
//	   (docs/shadow.md)
//
// Version 2 exists for speed: every delivery attempt reads and rewrites the
// record, and JSON was a twentieth of the node's CPU under load.
const (
	recordJSON     = 1
	recordBinaryV2 = 2
	recordBinaryV3 = 3
	recordBinaryV4 = 4
	recordBinary   = 5
)

func encodeMessage(m *Message) ([]byte, error) {
	b := make([]byte, 1, 512)
	b[0] = recordBinary
	return appendMessage(b, m)
}

func decodeMessage(v []byte) (*Message, error) {
	if len(v) == 0 {
		return nil, errors.New("empty record")
	}
	m := new(Message)
	switch v[0] {
	case recordJSON:
		if err := json.Unmarshal(v[1:], m); err != nil {
			return nil, err
		}
	case recordBinaryV2, recordBinaryV3, recordBinaryV4, recordBinary:
		r := recordReader{b: v[1:]}
		r.message(m, v[0])
		if r.err == nil && len(r.b) > 0 {
			r.err = fmt.Errorf("%d bytes after the record", len(r.b))
		}
		if r.err != nil {
			return nil, fmt.Errorf("record: %w", r.err)
		}
	default:
		return nil, fmt.Errorf("unknown record version %d", v[0])
	}
	m.updateNext()
	return m, nil
}

// appendMessage appends the version-4 layout of m: every field of Message
// in declaration order; strings and lists length-prefixed (uvarint),
// integers as varints, booleans as one byte, times as time.MarshalBinary
// with a length byte. Message.NextAttempt is not stored (updateNext
// derives it). Hops in doubt, when a recipient has one, follow last
// (appendDoubts).
func appendMessage(b []byte, m *Message) ([]byte, error) {
	e := &m.Envelope
	b = appendString(b, e.ID)
	b = appendString(b, e.From)
	b = binary.AppendUvarint(b, uint64(len(e.Rcpts)))
	for i := range e.Rcpts {
		b = appendRcpt(b, &e.Rcpts[i])
	}
	b = appendString(b, e.Ret)
	b = appendString(b, e.EnvID)
	b = appendBool(b, e.SMTPUTF8)
	b = appendBool(b, e.EightBit)
	b, err := appendTime(b, e.ReceivedAt)
	if err != nil {
		return nil, err
	}
	b = appendStrings(b, e.Trace)
	b = appendString(b, e.Source)
	b = appendString(b, e.ClientAddr)
	b = appendString(b, e.AuthUser)

	b = binary.AppendUvarint(b, uint64(len(m.Recipients)))
	for i := range m.Recipients {
		r := &m.Recipients[i]
		b = appendRcpt(b, &r.Rcpt)
		b = binary.AppendVarint(b, int64(r.State))
		b = binary.AppendVarint(b, int64(r.Attempts))
		if b, err = appendTime(b, r.NextAttempt); err != nil {
			return nil, err
		}
		b = appendString(b, r.LastError)
		b = appendString(b, r.LastReply)
		if b, err = appendTime(b, r.LastAttempt); err != nil {
			return nil, err
		}
		b = appendBool(b, r.HandedOn)
	}
	b = appendBool(b, m.Held)
	b = binary.AppendVarint(b, m.Size)
	b = appendBool(b, m.DelayNotified)
	b = appendString(b, e.Origin)
	b = appendString(b, e.MessageID)
	b = appendBytes(b, e.HopHeader)
	b = binary.AppendVarint(b, int64(e.PeerFields))
	b, err = appendDoubts(b, m, true)
	if err != nil {
		return nil, err
	}
	// Version 5: the copy's mesh age and suspect flag (docs/shadow.md).
	b = binary.AppendVarint(b, e.MeshAge.Milliseconds())
	return appendBool(b, e.Suspect), nil
}

// appendDoubts appends the recipients' hops in doubt, only when there is
// one, so a record without doubts is the layout earlier versions wrote:
// a count, then per doubt the recipient's index, node, address, channel
// address, copy ID and since.
func appendDoubts(b []byte, m *Message, always bool) ([]byte, error) {
	n := 0
	for i := range m.Recipients {
		if m.Recipients[i].Doubt != nil {
			n++
		}
	}
	if n == 0 && !always {
		return b, nil
	}
	b = binary.AppendUvarint(b, uint64(n))
	for i := range m.Recipients {
		d := m.Recipients[i].Doubt
		if d == nil {
			continue
		}
		b = binary.AppendUvarint(b, uint64(i))
		b = appendString(b, d.Node)
		b = appendString(b, d.Addr)
		b = appendString(b, d.Channel)
		b = appendString(b, d.CopyID)
		var err error
		if b, err = appendTime(b, d.Since); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func appendRcpt(b []byte, r *Rcpt) []byte {
	b = appendString(b, r.Addr)
	b = appendStrings(b, r.Notify)
	return appendString(b, r.ORcpt)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendTime(b []byte, t time.Time) ([]byte, error) {
	tb, err := t.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b = append(b, byte(len(tb)))
	return append(b, tb...), nil
}

// recordReader decodes the version-2 layout; the first error sticks and
// every later read returns zero values.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated or malformed %s", what)
	}
	r.b = nil
}

func (r *recordReader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length that what is left must cover: a string's bytes, or
// a list's elements (each at least one byte).
func (r *recordReader) count(what string) int {
	n := r.uvarint(what)
	if n > uint64(len(r.b)) {
		r.fail(what)
		return 0
	}
	return int(n)
}

func (r *recordReader) string(what string) string {
	n := r.count(what) // a length no longer than what is left
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// bytes is string for a []byte field: nil when empty.
func (r *recordReader) bytes(what string) []byte {
	n := r.count(what)
	if n == 0 {
		return nil
	}
	p := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	return p
}

func (r *recordReader) strings(what string) []string {
	n := r.count(what)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.string(what)
	}
	return out
}

func (r *recordReader) bool(what string) bool {
	if len(r.b) == 0 || r.b[0] > 1 {
		r.fail(what)
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

func (r *recordReader) time(what string) time.Time {
	if len(r.b) == 0 || int(r.b[0]) > len(r.b)-1 {
		r.fail(what)
		return time.Time{}
	}
	n := int(r.b[0])
	var t time.Time
	// Times the admin API could not show as RFC 3339 (a year outside
	// 0..9999, an offset of a day or more or not in whole minutes) are
	// never written: the record is damaged.
	err := t.UnmarshalBinary(r.b[1 : 1+n])
	if _, off := t.Zone(); err != nil || t.Year() < 0 || t.Year() > 9999 || off <= -86400 || off >= 86400 || off%60 != 0 {
		r.fail(what)
		return time.Time{}
	}
	r.b = r.b[1+n:]
	return t
}

func (r *recordReader) int(what string) int {
	v := r.varint(what)
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail(what)
		return 0
	}
	return int(v)
}

func (r *recordReader) rcpt(x *Rcpt) {
	x.Addr = r.string("recipient address")
	x.Notify = r.strings("NOTIFY")
	x.ORcpt = r.string("ORCPT")
}

func (r *recordReader) message(m *Message, version byte) {
	e := &m.Envelope
	e.ID = r.string("id")
	e.From = r.string("sender")
	if n := r.count("recipients"); n > 0 {
		e.Rcpts = make([]Rcpt, n)
		for i := range e.Rcpts {
			r.rcpt(&e.Rcpts[i])
		}
	}
	e.Ret = r.string("RET")
	e.EnvID = r.string("ENVID")
	e.SMTPUTF8 = r.bool("SMTPUTF8")
	e.EightBit = r.bool("8BITMIME")
	e.ReceivedAt = r.time("received time")
	e.Trace = r.strings("trace")
	e.Source = r.string("source")
	e.ClientAddr = r.string("client address")
	e.AuthUser = r.string("auth user")
	if n := r.count("recipient states"); n > 0 {
		m.Recipients = make([]Recipient, n)
		for i := range m.Recipients {
			x := &m.Recipients[i]
			r.rcpt(&x.Rcpt)
			x.State = RcptState(r.int("state"))
			x.Attempts = r.int("attempts")
			x.NextAttempt = r.time("next attempt")
			x.LastError = r.string("last error")
			x.LastReply = r.string("last reply")
			x.LastAttempt = r.time("last attempt")
			x.HandedOn = r.bool("handed on")
		}
	}
	m.Held = r.bool("held")
	m.Size = r.varint("size")
	m.DelayNotified = r.bool("delay notified")
	if version >= recordBinaryV3 {
		e.Origin = r.string("origin")
		e.MessageID = r.string("message-id")
	}
	if version >= recordBinaryV4 {
		e.HopHeader = r.bytes("hop header")
		e.PeerFields = r.int("peer fields")
		if e.PeerFields < 0 {
			r.fail("peer fields")
		}
	}
	if version < recordBinaryV3 || r.err != nil || (version < recordBinary && len(r.b) == 0) {
		return
	}
	n := r.count("doubts")
	if n == 0 && version < recordBinary {
		r.fail("doubts") // versions 3 and 4 wrote them only when there was one
		return
	}
	for range n {
		// Written as a uvarint (appendDoubts); read as a varint before,
		// which took every odd index for a negative one.
		u := r.uvarint("doubt recipient")
		i := -1
		if u < uint64(len(m.Recipients)) {
			i = int(u)
		}
		d := &Doubt{Node: r.string("doubt node"), Addr: r.string("doubt address"), Channel: r.string("doubt channel"),
			CopyID: r.string("doubt copy"), Since: r.time("doubt since")}
		if r.err != nil {
			return
		}
		if i < 0 || i >= len(m.Recipients) {
			r.fail("doubt recipient")
			return
		}
		m.Recipients[i].Doubt = d
	}
	if version >= recordBinary {
		e.MeshAge = time.Duration(r.varint("mesh age")) * time.Millisecond
		e.Suspect = r.bool("suspect")
	}
}
