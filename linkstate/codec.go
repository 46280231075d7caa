package linkstate

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// Record wire format, version 1. PROTOCOL.md documents it byte by byte.
const (
	recordMagic   = "MLSR"
	recordFormat  = 1
	flagTombstone = 0x01

	connFlagSuppressed = 0x01
	connFlagBridge     = 0x02

	hmacSigSize    = 32 // HMAC-SHA256
	ed25519SigSize = 64
)

// EncodeRecord returns the canonical encoding of r, signature included.
// Lists are written in canonical order whatever their order in r, so equal
// records encode to equal bytes. r is not modified.
func EncodeRecord(r *Record) ([]byte, error) {
	return AppendRecord(nil, r)
}

// AppendRecord appends the canonical encoding of r to b.
func AppendRecord(b []byte, r *Record) ([]byte, error) {
	start := len(b)
	b, err := appendSigned(b, r)
	if err != nil {
		return b[:start], err
	}
	if len(r.Signature) > 255 {
		return b[:start], invalid("signature of %d bytes", len(r.Signature))
	}
	b = append(b, byte(len(r.Signature)))
	b = append(b, r.Signature...)
	if len(b)-start > MaxRecordSize {
		return b[:start], invalid("record of %d bytes exceeds %d", len(b)-start, MaxRecordSize)
	}
	return b, nil
}

// SigningBytes returns what a signature of r covers: the canonical
// encoding of r up to and including the key ID, without the signature
// length and signature that end it.
func SigningBytes(r *Record) ([]byte, error) {
	b, err := appendSigned(nil, r)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxRecordSize {
		return nil, invalid("record of %d bytes exceeds %d", len(b), MaxRecordSize)
	}
	return b, nil
}

// HashRecord returns the SHA-256 of the canonical encoding of r, signature
// included. It breaks ties between different records of equal version.
func HashRecord(r *Record) ([32]byte, error) {
	b, err := EncodeRecord(r)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

func appendSigned(b []byte, r *Record) ([]byte, error) {
	c := canonical(r)
	if err := validate(c); err != nil {
		return b, err
	}
	return appendBody(b, c), nil
}

// appendBody writes r as it is, without sorting or checking it.
func appendBody(b []byte, c *Record) []byte {
	b = append(b, recordMagic...)
	b = append(b, recordFormat)
	var flags byte
	if c.Tombstone {
		flags |= flagTombstone
	}
	b = append(b, flags)
	b = appendStr(b, c.RG)
	b = binary.BigEndian.AppendUint64(b, c.Version.Epoch)
	b = binary.BigEndian.AppendUint32(b, c.Version.Major)
	b = binary.BigEndian.AppendUint32(b, c.Version.Minor)
	b = binary.BigEndian.AppendUint32(b, c.Version.User)
	b = appendStr(b, c.Master)
	b = binary.BigEndian.AppendUint64(b, uint64(c.IssuedAt.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(c.TTL/time.Second))

	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Members)))
	for _, m := range c.Members {
		b = appendStr(b, m.Name)
		b = appendStr(b, m.SMTP)
		b = appendStr(b, m.LinkState)
		b = binary.BigEndian.AppendUint32(b, m.Priority)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Connectors)))
	for i := range c.Connectors {
		b = appendConnector(b, &c.Connectors[i])
	}
	b = appendSpaces(b, c.AddressSpaces)
	return appendStr(b, c.KeyID)
}

func appendConnector(b []byte, k *Connector) []byte {
	b = appendStr(b, k.ID)
	b = appendStr(b, k.From)
	b = appendStr(b, k.To)
	b = append(b, byte(k.Cost))
	var flags byte
	if k.Suppressed {
		flags |= connFlagSuppressed
	}
	if k.Bridge {
		flags |= connFlagBridge
	}
	b = append(b, flags)
	b = appendStr(b, k.Smarthost)
	b = appendStrs(b, k.SourceBridgeheads)
	b = appendStrs(b, k.TargetBridgeheads)
	b = appendSpaces(b, k.AddressSpaces)
	b = binary.BigEndian.AppendUint16(b, uint16(len(k.Pairs)))
	for _, p := range k.Pairs {
		b = appendStr(b, p.Source)
		b = appendStr(b, p.Target)
		if p.Up {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendStrs(b []byte, ss []string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(ss)))
	for _, s := range ss {
		b = appendStr(b, s)
	}
	return b
}

func appendSpaces(b []byte, as []AddressSpace) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(as)))
	for _, a := range as {
		b = appendStr(b, a.Pattern)
		b = append(b, byte(a.Cost))
	}
	return b
}

// canonical returns r with every list in canonical order. It copies only
// the lists that are out of order, so an already canonical record (every
// decoded one) costs no allocation.
func canonical(r *Record) *Record {
	c := *r
	c.IssuedAt = time.Unix(r.IssuedAt.Unix(), 0).UTC()
	c.Members = sortedCopy(r.Members, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	c.AddressSpaces = sortedCopy(r.AddressSpaces, cmpSpace)
	conns := sortedCopy(r.Connectors, func(a, b Connector) int { return cmp.Compare(a.ID, b.ID) })
	copied := len(conns) > 0 && len(r.Connectors) > 0 && &conns[0] != &r.Connectors[0]
	for i := range conns {
		k := &conns[i]
		src := sortedCopy(k.SourceBridgeheads, cmp.Compare[string])
		tgt := sortedCopy(k.TargetBridgeheads, cmp.Compare[string])
		as := sortedCopy(k.AddressSpaces, cmpSpace)
		pairs := sortedCopy(k.Pairs, cmpPair)
		if sameSlice(src, k.SourceBridgeheads) && sameSlice(tgt, k.TargetBridgeheads) &&
			sameSlice(as, k.AddressSpaces) && sameSlice(pairs, k.Pairs) {
			continue
		}
		if !copied {
			conns = slices.Clone(conns)
			copied = true
			k = &conns[i]
		}
		k.SourceBridgeheads, k.TargetBridgeheads, k.AddressSpaces, k.Pairs = src, tgt, as, pairs
	}
	c.Connectors = conns
	return &c
}

func cmpSpace(a, b AddressSpace) int { return cmp.Compare(a.Pattern, b.Pattern) }

func cmpPair(a, b PairState) int {
	if c := cmp.Compare(a.Source, b.Source); c != 0 {
		return c
	}
	return cmp.Compare(a.Target, b.Target)
}

func sortedCopy[T any](s []T, f func(a, b T) int) []T {
	if slices.IsSortedFunc(s, f) {
		return s
	}
	c := slices.Clone(s)
	slices.SortStableFunc(c, f)
	return c
}

func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// validate checks every rule of the format on a record whose lists are in
// canonical order; out-of-order lists are reported as such.
func validate(r *Record) error {
	if !validName(r.RG) {
		return invalid("routing group name %q", r.RG)
	}
	if !validName(r.Master) {
		return invalid("record %s: master name %q", r.RG, r.Master)
	}
	if s := r.IssuedAt.Unix(); s < 0 || s > maxIssuedAt {
		return invalid("record %s: issued-at %d out of range", r.RG, s)
	}
	if r.TTL < MinTTL || r.TTL > MaxTTL || r.TTL%time.Second != 0 {
		return invalid("record %s: TTL %v outside %v..%v whole seconds", r.RG, r.TTL, MinTTL, MaxTTL)
	}
	if r.KeyID != "" && !validName(r.KeyID) {
		return invalid("record %s: key ID %q", r.RG, r.KeyID)
	}
	if n := len(r.Signature); n != 0 && (r.KeyID == "" && n != hmacSigSize || r.KeyID != "" && n != ed25519SigSize) {
		return invalid("record %s: signature of %d bytes for key %q", r.RG, n, r.KeyID)
	}
	if r.Tombstone && (len(r.Members) > 0 || len(r.Connectors) > 0 || len(r.AddressSpaces) > 0) {
		return invalid("record %s: tombstone with content", r.RG)
	}
	if len(r.Members) > MaxMembers {
		return invalid("record %s: %d members exceed %d", r.RG, len(r.Members), MaxMembers)
	}
	for i, m := range r.Members {
		if !validName(m.Name) {
			return invalid("record %s: member name %q", r.RG, m.Name)
		}
		if i > 0 && r.Members[i-1].Name >= m.Name {
			return invalid("record %s: members not strictly sorted at %q", r.RG, m.Name)
		}
		if (m.SMTP != "" && !validAddr(m.SMTP)) || (m.LinkState != "" && !validAddr(m.LinkState)) {
			return invalid("record %s: member %s: bad address", r.RG, m.Name)
		}
	}
	if len(r.Connectors) > MaxConnectors {
		return invalid("record %s: %d connectors exceed %d", r.RG, len(r.Connectors), MaxConnectors)
	}
	spaces := len(r.AddressSpaces)
	for i := range r.Connectors {
		k := &r.Connectors[i]
		if i > 0 && r.Connectors[i-1].ID >= k.ID {
			return invalid("record %s: connectors not strictly sorted at %q", r.RG, k.ID)
		}
		if err := validateConnector(r.RG, k); err != nil {
			return err
		}
		spaces += len(k.AddressSpaces)
	}
	if spaces > MaxAddressSpaces {
		return invalid("record %s: %d address spaces exceed %d", r.RG, spaces, MaxAddressSpaces)
	}
	if err := validateSpaces(r.AddressSpaces); err != nil {
		return fmt.Errorf("record %s: %w", r.RG, err)
	}
	return nil
}

func validateConnector(rg string, k *Connector) error {
	if !validName(k.ID) {
		return invalid("record %s: connector ID %q", rg, k.ID)
	}
	if k.From != rg {
		return invalid("record %s: connector %s: from %q is not the record's RG", rg, k.ID, k.From)
	}
	if k.To != "" && (!validName(k.To) || k.To == rg) {
		return invalid("record %s: connector %s: to %q", rg, k.ID, k.To)
	}
	if k.Cost < 1 || k.Cost > MaxConnectorCost {
		return invalid("record %s: connector %s: cost %d outside 1..%d", rg, k.ID, k.Cost, MaxConnectorCost)
	}
	if k.Smarthost != "" && (k.To != "" || !validAddr(k.Smarthost)) {
		return invalid("record %s: connector %s: smarthost %q", rg, k.ID, k.Smarthost)
	}
	if len(k.SourceBridgeheads) > MaxBridgeheads || len(k.TargetBridgeheads) > MaxBridgeheads {
		return invalid("record %s: connector %s: more than %d bridgeheads", rg, k.ID, MaxBridgeheads)
	}
	for i, s := range k.SourceBridgeheads {
		if !validName(s) || (i > 0 && k.SourceBridgeheads[i-1] >= s) {
			return invalid("record %s: connector %s: source bridgehead %q bad, duplicate or out of order", rg, k.ID, s)
		}
	}
	for i, s := range k.TargetBridgeheads {
		if !validAddr(s) || (i > 0 && k.TargetBridgeheads[i-1] >= s) {
			return invalid("record %s: connector %s: target bridgehead %q bad, duplicate or out of order", rg, k.ID, s)
		}
	}
	if len(k.AddressSpaces) > MaxAddressSpaces {
		return invalid("record %s: connector %s: too many address spaces", rg, k.ID)
	}
	if err := validateSpaces(k.AddressSpaces); err != nil {
		return fmt.Errorf("record %s: connector %s: %w", rg, k.ID, err)
	}
	if len(k.Pairs) > MaxPairs {
		return invalid("record %s: connector %s: %d pairs exceed %d", rg, k.ID, len(k.Pairs), MaxPairs)
	}
	for i, p := range k.Pairs {
		if !validName(p.Source) || !validAddr(p.Target) {
			return invalid("record %s: connector %s: pair (%q, %q)", rg, k.ID, p.Source, p.Target)
		}
		if i > 0 && cmpPair(k.Pairs[i-1], p) >= 0 {
			return invalid("record %s: connector %s: pairs not strictly sorted at (%s, %s)", rg, k.ID, p.Source, p.Target)
		}
	}
	return nil
}

func validateSpaces(as []AddressSpace) error {
	for i, a := range as {
		if !validPattern(a.Pattern) {
			return invalid("address space %q", a.Pattern)
		}
		if a.Cost > MaxAddressSpaceCost {
			return invalid("address space %s: cost %d outside 0..%d", a.Pattern, a.Cost, MaxAddressSpaceCost)
		}
		if i > 0 && as[i-1].Pattern >= a.Pattern {
			return invalid("address spaces not strictly sorted at %q", a.Pattern)
		}
	}
	return nil
}

// OrgRecordMagic starts the other kind of record the link-state channels
// carry: a signed organisation document (package orgdoc), flooded with the
// routing groups' records (PROTOCOL.md, "Organisation document").
const OrgRecordMagic = "MORG\x01"

// IsOrgRecord reports whether a record read from the wire is an
// organisation document rather than a routing group's record.
func IsOrgRecord(b []byte) bool {
	return len(b) >= len(OrgRecordMagic) && string(b[:len(OrgRecordMagic)]) == OrgRecordMagic
}
