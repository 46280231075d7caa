package channel

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
	"unicode/utf8"
)

// Version is the protocol version this package speaks.
const Version = 1

// DefaultPort is the production port of the channel.
const DefaultPort = 691

// MaxFrame bounds one frame (type + payload).
const MaxFrame = 16 << 20

const magic = "MESHD691"

const (
	maxStr      = 255
	maxRecords  = 100_000
	maxObserved = 10_000
)

type frameType uint8

const (
	fHello   frameType = 1
	fWelcome frameType = 2
	fRefuse  frameType = 3
	fRecords frameType = 4
	fObserve frameType = 5
	fPing    frameType = 6
	fAdmin   frameType = 7
	// 8 TRACKREQ and 9 TRACKRESP: see track.go.
)

// AdminState is an operator's override of a connector's state.
type AdminState uint8

const (
	AdminAuto  AdminState = 0 // state follows observations
	AdminDown  AdminState = 1 // advertised down whatever is observed
	AdminDrain AdminState = 2 // advertised at the highest cost, so it carries mail only as a last resort
)

func (a AdminState) String() string {
	switch a {
	case AdminAuto:
		return "auto"
	case AdminDown:
		return "down"
	case AdminDrain:
		return "drain"
	}
	return fmt.Sprintf("admin(%d)", uint8(a))
}

func encodeAdmin(connector string, st AdminState) []byte {
	w := &writer{}
	w.str(connector)
	w.u8(uint8(st))
	return w.b
}

func decodeAdmin(p []byte) (string, AdminState, error) {
	r := &reader{b: p}
	name, st := r.str(), AdminState(r.u8())
	if err := r.end(); err != nil {
		return "", 0, fmt.Errorf("channel: admin: %w", err)
	}
	if st > AdminDrain {
		return "", 0, fmt.Errorf("channel: admin: unknown state %d", st)
	}
	return name, st, nil
}

// Role is what a client connects as.
type Role uint8

const (
	RoleMember Role = 1
	RoleDump   Role = 2
)

// Refusal codes of a REFUSE frame.
const (
	RefuseNotMaster   = 1
	RefuseBadGreeting = 2
	RefuseUnknownPeer = 3
	RefuseWrongRG     = 4
	RefuseVersion     = 5
)

// Observation is one member's view of one bridgehead pair of a connector.
type Observation struct {
	Connector string    `json:"connector"`
	Source    string    `json:"source"` // node name of the source bridgehead
	Target    string    `json:"target"` // target bridgehead address
	Up        bool      `json:"up"`
	At        time.Time `json:"at"`
}

// ErrRefused is wrapped by errors from a server's REFUSE frame.
var ErrRefused = errors.New("channel: refused")

// RefusedError is the server's refusal.
type RefusedError struct {
	Code int
	Text string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("channel: refused (code %d): %s", e.Code, e.Text)
}

func (e *RefusedError) Unwrap() error { return ErrRefused }

// writer builds a payload.
type writer struct{ b []byte }

func (w *writer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *writer) u16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *writer) i64(v int64)  { w.b = binary.BigEndian.AppendUint64(w.b, uint64(v)) }
func (w *writer) str(s string) {
	if len(s) > maxStr {
		s = s[:maxStr]
	}
	w.u16(uint16(len(s)))
	w.b = append(w.b, s...)
}
func (w *writer) bytes(p []byte) { w.u32(uint32(len(p))); w.b = append(w.b, p...) }

// reader takes a payload apart; the first error sticks.
type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated payload")

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = errShort
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) i64() int64 {
	if p := r.take(8); p != nil {
		return int64(binary.BigEndian.Uint64(p))
	}
	return 0
}

func (r *reader) str() string {
	n := int(r.u16())
	if r.err == nil && n > maxStr {
		r.err = fmt.Errorf("string of %d bytes exceeds %d", n, maxStr)
		return ""
	}
	p := r.take(n)
	if r.err == nil && !utf8.Valid(p) {
		r.err = errors.New("string is not UTF-8")
	}
	return string(p)
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return r.err
}

func writeFrame(w *bufio.Writer, t frameType, payload []byte) error {
	if len(payload)+1 > MaxFrame {
		return fmt.Errorf("channel: frame of %d bytes exceeds %d", len(payload)+1, MaxFrame)
	}
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(payload)+1))
	hdr[4] = byte(t)
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := w.Write(payload); err != nil {
		return err
	}
	return w.Flush()
}

func readFrame(r io.Reader) (frameType, []byte, error) { return readFrameMax(r, MaxFrame) }

// MaxHelloFrame bounds the frames a connection may send before its HELLO
// is accepted: a HELLO is a few names, so an unauthenticated client cannot
// make the server hold more than this per connection.
const MaxHelloFrame = 4 << 10

// frameGrowStep is how much of a frame is read before its buffer grows:
// the buffer follows the bytes that actually arrived, never the length a
// header claims (a 5-byte header could otherwise reserve MaxFrame).
const frameGrowStep = 64 << 10

// readFrameMax reads one frame of at most limit bytes (type + payload).
func readFrameMax(r io.Reader, limit uint32) (frameType, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 1 || n > limit {
		return 0, nil, fmt.Errorf("channel: frame length %d out of range (at most %d)", n, limit)
	}
	want := int(n - 1)
	p := make([]byte, 0, min(want, frameGrowStep))
	for len(p) < want {
		if len(p) == cap(p) {
			p = slices.Grow(p, min(want-len(p), max(len(p), frameGrowStep)))
		}
		k, err := r.Read(p[len(p):min(cap(p), want)])
		p = p[:len(p)+k]
		if err != nil && len(p) < want {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, fmt.Errorf("channel: read frame: %w", err)
		}
	}
	return frameType(hdr[4]), p, nil
}

type hello struct {
	Version uint16
	Role    Role
	Node    string
	RG      string
}

func encodeHello(h hello) []byte {
	w := &writer{}
	w.b = append(w.b, magic...)
	w.u16(h.Version)
	w.u8(uint8(h.Role))
	w.str(h.Node)
	w.str(h.RG)
	return w.b
}

func decodeHello(p []byte) (hello, error) {
	r := &reader{b: p}
	if string(r.take(len(magic))) != magic {
		return hello{}, errors.New("channel: greeting: bad magic")
	}
	h := hello{Version: r.u16(), Role: Role(r.u8()), Node: r.str(), RG: r.str()}
	if err := r.end(); err != nil {
		return hello{}, fmt.Errorf("channel: greeting: %w", err)
	}
	if h.Role != RoleMember && h.Role != RoleDump && h.Role != RoleTrack && h.Role != RoleHolds {
		return hello{}, fmt.Errorf("channel: greeting: unknown role %d", h.Role)
	}
	return h, nil
}

func encodeRecords(full bool, recs [][]byte) []byte {
	w := &writer{}
	if full {
		w.u8(1)
	} else {
		w.u8(0)
	}
	w.u32(uint32(len(recs)))
	for _, r := range recs {
		w.bytes(r)
	}
	return w.b
}

func decodeRecords(p []byte) (full bool, recs [][]byte, err error) {
	r := &reader{b: p}
	f := r.u8()
	n := r.u32()
	if r.err == nil && (f > 1 || n > maxRecords) {
		return false, nil, fmt.Errorf("channel: records: bad header (full=%d count=%d)", f, n)
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		l := r.u32()
		if rec := r.take(int(l)); r.err == nil {
			recs = append(recs, rec)
		}
	}
	if err := r.end(); err != nil {
		return false, nil, fmt.Errorf("channel: records: %w", err)
	}
	return f == 1, recs, nil
}

func encodeObservations(obs []Observation) []byte {
	w := &writer{}
	w.u32(uint32(len(obs)))
	for _, o := range obs {
		w.str(o.Connector)
		w.str(o.Source)
		w.str(o.Target)
		if o.Up {
			w.u8(1)
		} else {
			w.u8(0)
		}
		w.i64(o.At.UnixMilli())
	}
	return w.b
}

func decodeObservations(p []byte) ([]Observation, error) {
	r := &reader{b: p}
	n := r.u32()
	if r.err == nil && n > maxObserved {
		return nil, fmt.Errorf("channel: observations: count %d exceeds %d", n, maxObserved)
	}
	var obs []Observation
	for i := uint32(0); i < n && r.err == nil; i++ {
		o := Observation{Connector: r.str(), Source: r.str(), Target: r.str()}
		up := r.u8()
		o.At = time.UnixMilli(r.i64()).UTC()
		if r.err == nil && up > 1 {
			r.err = fmt.Errorf("bad up flag %d", up)
		}
		o.Up = up == 1
		obs = append(obs, o)
	}
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("channel: observations: %w", err)
	}
	return obs, nil
}

func encodeRefuse(code int, text string) []byte {
	w := &writer{}
	w.u8(uint8(code))
	w.str(text)
	return w.b
}

func decodeRefuse(p []byte) *RefusedError {
	r := &reader{b: p}
	e := &RefusedError{Code: int(r.u8()), Text: r.str()}
	if r.end() != nil {
		return &RefusedError{Code: 0, Text: "malformed refusal"}
	}
	return e
}

func encodeWelcome(node, rg string) []byte {
	w := &writer{}
	w.u16(Version)
	w.str(node)
	w.str(rg)
	return w.b
}

// encodeList is the payload of a request for a list of strings (the keys
// of a tracking request, the copy IDs of a holds request): a count, then
// each string.
func encodeList(ss []string) []byte {
	w := &writer{}
	w.u16(uint16(len(ss)))
	for _, s := range ss {
		w.str(s)
	}
	return w.b
}

// decodeList reads encodeList's payload of at most limit strings; what and
// items name the request and its strings in errors.
func decodeList(p []byte, limit int, what, items string) ([]string, error) {
	r := &reader{b: p}
	n := int(r.u16())
	if n > limit {
		return nil, fmt.Errorf("channel: %s: %d %s exceed %d", what, n, items, limit)
	}
	ss := make([]string, 0, n)
	for range n {
		ss = append(ss, r.str())
	}
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("channel: %s: %w", what, err)
	}
	return ss, nil
}
