package linkstate

import (
	"encoding/binary"
	"fmt"
	"time"
)

// reader is a bounds-checked cursor over an encoding. The first error
// sticks; later reads return zero values, so decoders check once per item.
type reader struct {
	b   []byte
	s   string // copy of b that decoded strings share: one allocation, not one per string
	off int
	err error
}

func (d *reader) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrMalformed, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *reader) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.off {
		d.fail("truncated: need %d bytes, have %d", n, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *reader) u8() byte {
	p := d.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (d *reader) u16() int {
	p := d.take(2)
	if p == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(p))
}

func (d *reader) u32() uint32 {
	p := d.take(4)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint32(p)
}

func (d *reader) u64() uint64 {
	p := d.take(8)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint64(p)
}

func (d *reader) str() string {
	n := int(d.u8())
	start := d.off
	if d.take(n); d.err != nil {
		return ""
	}
	return d.s[start : start+n]
}

// count reads a u16 element count and checks it against max and against
// the bytes left (each element takes at least minSize), so a forged count
// cannot make the decoder allocate more than the input justifies.
func (d *reader) count(what string, max, minSize int) int {
	n := d.u16()
	if d.err != nil {
		return 0
	}
	if n > max {
		d.err = invalid("%d %s exceed %d", n, what, max)
		return 0
	}
	if n*minSize > len(d.b)-d.off {
		d.fail("truncated: %d %s need at least %d bytes", n, what, n*minSize)
		return 0
	}
	return n
}

func (d *reader) strs(what string, max int) []string {
	n := d.count(what, max, 1)
	if n == 0 {
		return nil
	}
	s := make([]string, n)
	for i := range s {
		s[i] = d.str()
	}
	return s
}

func (d *reader) spaces() []AddressSpace {
	n := d.count("address spaces", MaxAddressSpaces, 2)
	if n == 0 {
		return nil
	}
	as := make([]AddressSpace, n)
	for i := range as {
		as[i].Pattern = d.str()
		as[i].Cost = uint32(d.u8())
	}
	return as
}

// DecodeRecord decodes one record, refusing anything its canonical
// encoding would not be: bad magic or format version, truncation,
// trailing bytes, reserved bits, lists out of order or with duplicates,
// invalid names and every limit of the format.
func DecodeRecord(b []byte) (*Record, error) {
	if len(b) > MaxRecordSize {
		return nil, invalid("record of %d bytes exceeds %d", len(b), MaxRecordSize)
	}
	d := &reader{b: b, s: string(b)}
	if magic := d.take(len(recordMagic)); d.err != nil || string(magic) != recordMagic {
		return nil, fmt.Errorf("%w: bad record magic", ErrMalformed)
	}
	if v := d.u8(); d.err == nil && v != recordFormat {
		return nil, fmt.Errorf("%w: record format %d", ErrUnsupportedFormat, v)
	}
	flags := d.u8()
	if flags&^flagTombstone != 0 {
		d.fail("reserved record flags %#x", flags)
	}
	r := &Record{Tombstone: flags&flagTombstone != 0}
	r.RG = d.str()
	r.Version = Version{Epoch: d.u64(), Major: d.u32(), Minor: d.u32(), User: d.u32()}
	r.Master = d.str()
	issued := d.u64()
	if issued > uint64(maxIssuedAt) {
		d.err = invalid("issued-at %d out of range", issued)
	}
	r.IssuedAt = time.Unix(int64(issued), 0).UTC()
	r.TTL = time.Duration(d.u32()) * time.Second

	if n := d.count("members", MaxMembers, 1+1+1+4); n > 0 {
		r.Members = make([]Member, n)
		for i := range r.Members {
			m := &r.Members[i]
			m.Name, m.SMTP, m.LinkState, m.Priority = d.str(), d.str(), d.str(), d.u32()
		}
	}
	if n := d.count("connectors", MaxConnectors, 16); n > 0 {
		r.Connectors = make([]Connector, n)
		for i := range r.Connectors {
			decodeConnector(d, &r.Connectors[i])
		}
	}
	r.AddressSpaces = d.spaces()
	r.KeyID = d.str()
	if n := int(d.u8()); n > 0 {
		r.Signature = append([]byte(nil), d.take(n)...)
	}
	if d.err != nil {
		return nil, fmt.Errorf("linkstate: decode record: %w", d.err)
	}
	if d.off != len(b) {
		return nil, fmt.Errorf("linkstate: decode record: %w: %d trailing bytes", ErrMalformed, len(b)-d.off)
	}
	if err := validate(r); err != nil {
		return nil, fmt.Errorf("linkstate: decode record: %w", err)
	}
	return r, nil
}

func decodeConnector(d *reader, k *Connector) {
	k.ID, k.From, k.To = d.str(), d.str(), d.str()
	k.Cost = uint32(d.u8())
	flags := d.u8()
	if flags&^(connFlagSuppressed|connFlagBridge) != 0 {
		d.fail("reserved connector flags %#x", flags)
	}
	k.Suppressed = flags&connFlagSuppressed != 0
	k.Bridge = flags&connFlagBridge != 0
	k.Smarthost = d.str()
	k.SourceBridgeheads = d.strs("source bridgeheads", MaxBridgeheads)
	k.TargetBridgeheads = d.strs("target bridgeheads", MaxBridgeheads)
	k.AddressSpaces = d.spaces()
	if n := d.count("pairs", MaxPairs, 3); n > 0 {
		k.Pairs = make([]PairState, n)
		for i := range k.Pairs {
			p := &k.Pairs[i]
			p.Source, p.Target = d.str(), d.str()
			switch d.u8() {
			case 0:
			case 1:
				p.Up = true
			default:
				d.fail("pair state byte not 0 or 1")
			}
		}
	}
}
