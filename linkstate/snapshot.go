package linkstate

import (
	"cmp"
	"crypto/sha256"
	"hash/maphash"
	"slices"
	"sync"
)

// nBuckets is the fan-out of a snapshot's copy-on-write table: an install
// copies the bucket array and one bucket (n/nBuckets entries), not the
// whole table, so installing n records costs O(n) in all, not O(n²).
const nBuckets = 256

// entry is one installed record with what is derived from its bytes.
type entry struct {
	rec  *Record // canonical, decoded from enc; never modified
	enc  []byte  // canonical encoding, signature included
	hash [32]byte
	sum  Summary
}

// Snapshot is an immutable view of an LSDB at one moment. Readers use it
// for as long as they like without locking; writers never wait for them.
// Everything it returns is shared and must not be modified.
type Snapshot struct {
	seed    maphash.Seed
	buckets [nBuckets]map[string]*entry
	n       int
	seq     uint64

	sortOnce sync.Once
	all      []*entry  // every entry, tombstones included, by RG
	live     []*Record // non-tombstone records, by RG
	sums     []Summary

	digOnce sync.Once
	digest  [32]byte
}

func newSnapshot(seed maphash.Seed) *Snapshot { return &Snapshot{seed: seed} }

func (s *Snapshot) bucket(rg string) int {
	return int(maphash.String(s.seed, rg) % nBuckets)
}

func (s *Snapshot) entry(rg string) *entry {
	return s.buckets[s.bucket(rg)][rg]
}

// with returns a copy of s in which rg maps to e (nil removes rg). Only
// the bucket of rg is copied.
func (s *Snapshot) with(rg string, e *entry) *Snapshot {
	ns := &Snapshot{seed: s.seed, buckets: s.buckets, n: s.n, seq: s.seq + 1}
	i := s.bucket(rg)
	old := s.buckets[i]
	b := make(map[string]*entry, len(old)+1)
	for k, v := range old {
		b[k] = v
	}
	if _, had := b[rg]; had {
		ns.n--
	}
	if e != nil {
		b[rg] = e
		ns.n++
	} else {
		delete(b, rg)
	}
	ns.buckets[i] = b
	return ns
}

func (s *Snapshot) sort() {
	s.sortOnce.Do(func() {
		s.all = make([]*entry, 0, s.n)
		for _, b := range s.buckets {
			for _, e := range b {
				s.all = append(s.all, e)
			}
		}
		slices.SortFunc(s.all, func(a, b *entry) int { return cmp.Compare(a.rec.RG, b.rec.RG) })
		s.sums = make([]Summary, len(s.all))
		for i, e := range s.all {
			s.sums[i] = e.sum
			if !e.rec.Tombstone {
				s.live = append(s.live, e.rec)
			}
		}
	})
}

// Seq increases with every change published to the LSDB.
func (s *Snapshot) Seq() uint64 { return s.seq }

// Len is the number of records held, tombstones included.
func (s *Snapshot) Len() int { return s.n }

// Records returns the live (non-tombstone) records sorted by RG. This is
// what route computation reads.
func (s *Snapshot) Records() []*Record {
	s.sort()
	return s.live
}

// All returns every record held, tombstones included, sorted by RG: what
// a node floods to its peers.
func (s *Snapshot) All() []*Record {
	s.sort()
	out := make([]*Record, len(s.all))
	for i, e := range s.all {
		out[i] = e.rec
	}
	return out
}

// Get returns the live record of rg; a tombstone counts as absent.
func (s *Snapshot) Get(rg string) (*Record, bool) {
	e := s.entry(rg)
	if e == nil || e.rec.Tombstone {
		return nil, false
	}
	return e.rec, true
}

// Lookup returns the record held for rg, tombstone or not.
func (s *Snapshot) Lookup(rg string) (*Record, bool) {
	e := s.entry(rg)
	if e == nil {
		return nil, false
	}
	return e.rec, true
}

// Encoded returns the canonical encoding of the record held for rg
// (tombstones included), ready to send as it is.
func (s *Snapshot) Encoded(rg string) ([]byte, bool) {
	e := s.entry(rg)
	if e == nil {
		return nil, false
	}
	return e.enc, true
}

// Summaries returns one summary per record held, sorted by RG.
func (s *Snapshot) Summaries() []Summary {
	s.sort()
	return s.sums
}

// Digest returns the org digest: SHA-256 of the canonical summary list
// (see DigestSummaries). Two nodes with equal digests hold the same
// records, byte for byte.
func (s *Snapshot) Digest() [32]byte {
	s.digOnce.Do(func() {
		s.sort()
		h := sha256.New()
		h.Write([]byte(summaryMagic))
		h.Write([]byte{summaryFormat, byte(len(s.sums) >> 24), byte(len(s.sums) >> 16), byte(len(s.sums) >> 8), byte(len(s.sums))})
		buf := make([]byte, 0, 128)
		for i := range s.sums {
			buf = appendSummary(buf[:0], &s.sums[i])
			h.Write(buf)
		}
		h.Sum(s.digest[:0])
	})
	return s.digest
}
