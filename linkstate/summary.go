package linkstate

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Summary names one record without its content: what two nodes exchange
// to find out which records each must send the other.
type Summary struct {
	RG        string
	Version   Version
	Tombstone bool
	Hash      [32]byte // SHA-256 of the record's canonical encoding
}

// Summarize returns the summary of r.
func Summarize(r *Record) (Summary, error) {
	h, err := HashRecord(r)
	if err != nil {
		return Summary{}, err
	}
	return Summary{RG: r.RG, Version: r.Version, Tombstone: r.Tombstone, Hash: h}, nil
}

// compareHeld orders two copies of one RG's record: by version, and at
// equal version by content hash, the higher winning. Every node applies
// the same total order, so any set of copies converges on the same one
// whatever the order they arrive in.
func compareHeld(av Version, ah [32]byte, bv Version, bh [32]byte) int {
	if c := av.Compare(bv); c != 0 {
		return c
	}
	return bytes.Compare(ah[:], bh[:])
}

// Summary list wire format, version 1 (PROTOCOL.md, "Summaries").
const (
	summaryMagic     = "MLSS"
	summaryFormat    = 1
	summaryEntryMin  = 1 + 1 + 8 + 4 + 4 + 4 + 1 + 32
	summaryHeaderLen = len(summaryMagic) + 1 + 4
)

// EncodeSummaries returns the canonical encoding of list. Entries are
// written sorted by RG; duplicate RGs, invalid names and more than
// MaxSummaries entries are refused. list is not modified.
func EncodeSummaries(list []Summary) ([]byte, error) {
	sorted := sortedCopy(list, cmpSummary)
	if len(sorted) > MaxSummaries {
		return nil, invalid("%d summaries exceed %d", len(sorted), MaxSummaries)
	}
	b := make([]byte, 0, summaryHeaderLen+len(sorted)*(summaryEntryMin+16))
	b = append(b, summaryMagic...)
	b = append(b, summaryFormat)
	b = binary.BigEndian.AppendUint32(b, uint32(len(sorted)))
	for i, s := range sorted {
		if !validName(s.RG) {
			return nil, invalid("summary RG name %q", s.RG)
		}
		if i > 0 && sorted[i-1].RG == s.RG {
			return nil, invalid("duplicate summary for %s", s.RG)
		}
		b = appendSummary(b, &s)
	}
	return b, nil
}

func appendSummary(b []byte, s *Summary) []byte {
	b = appendStr(b, s.RG)
	b = binary.BigEndian.AppendUint64(b, s.Version.Epoch)
	b = binary.BigEndian.AppendUint32(b, s.Version.Major)
	b = binary.BigEndian.AppendUint32(b, s.Version.Minor)
	b = binary.BigEndian.AppendUint32(b, s.Version.User)
	if s.Tombstone {
		b = append(b, flagTombstone)
	} else {
		b = append(b, 0)
	}
	return append(b, s.Hash[:]...)
}

func cmpSummary(a, b Summary) int { return cmp.Compare(a.RG, b.RG) }

// DecodeSummaries decodes a summary list, refusing bad magic or format,
// truncation, trailing bytes, reserved bits, invalid names, entries out of
// RG order or duplicated, and more than MaxSummaries entries.
func DecodeSummaries(b []byte) ([]Summary, error) {
	d := &reader{b: b, s: string(b)}
	if magic := d.take(len(summaryMagic)); d.err != nil || string(magic) != summaryMagic {
		return nil, fmt.Errorf("linkstate: decode summaries: %w: bad magic", ErrMalformed)
	}
	if v := d.u8(); d.err == nil && v != summaryFormat {
		return nil, fmt.Errorf("linkstate: decode summaries: %w: format %d", ErrUnsupportedFormat, v)
	}
	n := d.u32()
	if d.err == nil && n > MaxSummaries {
		return nil, fmt.Errorf("linkstate: decode summaries: %w", invalid("%d summaries exceed %d", n, MaxSummaries))
	}
	if d.err == nil && int(n)*summaryEntryMin > len(b)-d.off {
		d.fail("truncated: %d summaries", n)
	}
	if d.err != nil {
		return nil, fmt.Errorf("linkstate: decode summaries: %w", d.err)
	}
	list := make([]Summary, n)
	for i := range list {
		s := &list[i]
		s.RG = d.str()
		s.Version = Version{Epoch: d.u64(), Major: d.u32(), Minor: d.u32(), User: d.u32()}
		flags := d.u8()
		if flags&^flagTombstone != 0 {
			d.fail("reserved summary flags %#x", flags)
		}
		s.Tombstone = flags&flagTombstone != 0
		copy(s.Hash[:], d.take(32))
		if d.err != nil {
			return nil, fmt.Errorf("linkstate: decode summaries: %w", d.err)
		}
		if !validName(s.RG) {
			return nil, fmt.Errorf("linkstate: decode summaries: %w", invalid("RG name %q", s.RG))
		}
		if i > 0 && list[i-1].RG >= s.RG {
			return nil, fmt.Errorf("linkstate: decode summaries: %w", invalid("entries not strictly sorted at %q", s.RG))
		}
	}
	if d.off != len(b) {
		return nil, fmt.Errorf("linkstate: decode summaries: %w: %d trailing bytes", ErrMalformed, len(b)-d.off)
	}
	return list, nil
}

// DigestSummaries returns the org digest of list: SHA-256 over its
// canonical encoding (RG, versions, tombstone flag and content hash of
// every record, sorted by RG). Equal digests mean equal databases.
func DigestSummaries(list []Summary) ([32]byte, error) {
	b, err := EncodeSummaries(list)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// Diff compares our summaries with a peer's and says which RGs' records
// we must send (ours is newer or the peer lacks it) and which we must
// request (theirs is newer or we lack it). Copies of equal version but
// different content are settled by the higher hash, as the LSDB does.
// Both results are sorted; the inputs need not be.
func Diff(local, remote []Summary) (send, request []string) {
	l := sortedCopy(local, cmpSummary)
	r := sortedCopy(remote, cmpSummary)
	i, j := 0, 0
	for i < len(l) || j < len(r) {
		switch {
		case j == len(r) || (i < len(l) && l[i].RG < r[j].RG):
			send = append(send, l[i].RG)
			i++
		case i == len(l) || r[j].RG < l[i].RG:
			request = append(request, r[j].RG)
			j++
		default:
			switch c := compareHeld(l[i].Version, l[i].Hash, r[j].Version, r[j].Hash); {
			case c > 0:
				send = append(send, l[i].RG)
			case c < 0:
				request = append(request, r[j].RG)
			}
			i++
			j++
		}
	}
	return send, request
}
