package linkstate

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxSkew is how far in the future a record's IssuedAt may lie
// (clock skew between masters) before Install refuses it.
const DefaultMaxSkew = 5 * time.Minute

// ErrFull: the LSDB already holds MaxSummaries records.
var ErrFull = errors.New("linkstate: LSDB full")

// Options configure an LSDB.
type Options struct {
	// Keyring verifies every record installed. Required.
	Keyring *Keyring
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxSkew bounds how far ahead of Now a record's IssuedAt may be
	// (default DefaultMaxSkew).
	MaxSkew time.Duration
	// Logger gets a debug line per change (default: discard).
	Logger *slog.Logger
}

// LSDB is the link-state database: at most one record per RG, the
// newest by (version, content hash). Writers (Install, Expire) are
// serialised; every change publishes a new immutable Snapshot by pointer
// swap, so readers never block writers and never see a partial change.
type LSDB struct {
	keys    *Keyring
	now     func() time.Time
	maxSkew time.Duration
	log     *slog.Logger

	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[Snapshot]

	subMu sync.Mutex
	subs  map[*Subscription]struct{}
}

// New returns an empty LSDB.
func New(opts Options) (*LSDB, error) {
	if opts.Keyring == nil {
		return nil, errors.New("linkstate: new LSDB: Options.Keyring is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = DefaultMaxSkew
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	db := &LSDB{keys: opts.Keyring, now: opts.Now, maxSkew: opts.MaxSkew, log: opts.Logger,
		subs: map[*Subscription]struct{}{}}
	db.snap.Store(newSnapshot(maphash.MakeSeed()))
	return db, nil
}

// Snapshot returns the current view. It never blocks.
func (db *LSDB) Snapshot() *Snapshot { return db.snap.Load() }

// ExpiresAt is when an LSDB drops r: IssuedAt+TTL, or IssuedAt+2×TTL for
// a tombstone (kept longer so that an old copy of the record it deletes,
// still alive somewhere, cannot come back).
func (r *Record) ExpiresAt() time.Time {
	if r.Tombstone {
		return r.IssuedAt.Add(2 * r.TTL)
	}
	return r.IssuedAt.Add(r.TTL)
}

// NeedsRefresh tells the originating master that r is due to be reissued
// (same content, new IssuedAt and signature): when it is interval old, and
// in any case once half its TTL has passed, so that a late refresh never
// lets the record expire on other nodes.
func (r *Record) NeedsRefresh(now time.Time, interval time.Duration) bool {
	age := now.Sub(r.IssuedAt)
	return age >= interval || age >= r.TTL/2
}

// Install verifies r and installs it if it is newer than the record held
// for its RG. It reports whether the LSDB changed. A copy identical to the
// one held is no change and no error. Errors (errors.Is-able):
// ErrInvalid/ErrMalformed (breaks the format), ErrUnknownRG, ErrUnsigned,
// ErrUnknownKey, ErrBadSignature, ErrExpired, ErrFuture, ErrStale (older
// version, or equal version losing the content-hash tie-break), ErrFull.
//
// The LSDB keeps its own canonical copy; r is not retained.
func (db *LSDB) Install(r *Record) (bool, error) {
	enc, err := EncodeRecord(r)
	if err != nil {
		return false, fmt.Errorf("linkstate: install %s: %w", r.RG, err)
	}
	return db.install(r, enc)
}

// InstallEncoded decodes a record received from the wire and installs it.
func (db *LSDB) InstallEncoded(b []byte) (bool, error) {
	r, err := DecodeRecord(b)
	if err != nil {
		return false, fmt.Errorf("linkstate: install: %w", err)
	}
	return db.install(r, b)
}

func (db *LSDB) install(r *Record, enc []byte) (bool, error) {
	body := enc[:len(enc)-1-len(r.Signature)]
	if err := db.keys.verify(r, body); err != nil {
		return false, fmt.Errorf("linkstate: install %s: %w", r.RG, err)
	}
	now := db.now()
	if !now.Before(r.ExpiresAt()) {
		return false, fmt.Errorf("linkstate: install %s: %w at %s", r.RG, ErrExpired, r.ExpiresAt().Format(time.RFC3339))
	}
	if r.IssuedAt.After(now.Add(db.maxSkew)) {
		return false, fmt.Errorf("linkstate: install %s: %w: issued at %s", r.RG, ErrFuture, r.IssuedAt.Format(time.RFC3339))
	}
	hash := sha256.Sum256(enc)

	db.mu.Lock()
	cur := db.snap.Load()
	old := cur.entry(r.RG)
	if old != nil {
		switch c := compareHeld(r.Version, hash, old.rec.Version, old.hash); {
		case c == 0:
			db.mu.Unlock()
			return false, nil
		case c < 0:
			db.mu.Unlock()
			return false, fmt.Errorf("linkstate: install %s: version %v against %v: %w", r.RG, r.Version, old.rec.Version, ErrStale)
		}
	} else if cur.Len() >= MaxSummaries {
		db.mu.Unlock()
		return false, fmt.Errorf("linkstate: install %s: %w", r.RG, ErrFull)
	}
	stored, err := DecodeRecord(enc) // our own copy, in canonical form
	if err != nil {
		db.mu.Unlock()
		return false, fmt.Errorf("linkstate: install %s: %w", r.RG, err)
	}
	own := slices.Clone(enc)
	e := &entry{rec: stored, enc: own, hash: hash,
		sum: Summary{RG: stored.RG, Version: stored.Version, Tombstone: stored.Tombstone, Hash: hash}}
	db.snap.Store(cur.with(r.RG, e))
	db.mu.Unlock()

	db.log.Debug("linkstate: installed record", "record_rg", r.RG, "version", r.Version, "tombstone", r.Tombstone)
	db.notify([]string{r.RG})
	return true, nil
}

// Expire drops every record whose ExpiresAt is not after now and returns
// their RGs, sorted. A dropped record's connectors no longer exist for
// routing; its RG is free for any version that has not itself expired.
func (db *LSDB) Expire(now time.Time) []string {
	db.mu.Lock()
	cur := db.snap.Load()
	var gone []string
	for _, b := range cur.buckets {
		for rg, e := range b {
			if !now.Before(e.rec.ExpiresAt()) {
				gone = append(gone, rg)
			}
		}
	}
	if len(gone) == 0 {
		db.mu.Unlock()
		return nil
	}
	next := cur
	for _, rg := range gone {
		next = next.with(rg, nil)
	}
	next.seq = cur.seq + 1
	db.snap.Store(next)
	db.mu.Unlock()

	slices.Sort(gone)
	for _, rg := range gone {
		db.log.Debug("linkstate: record expired", "record_rg", rg)
	}
	db.notify(gone)
	return gone
}

// NextExpiry returns the earliest ExpiresAt of the records held, for the
// owner's timer that calls Expire; false when the LSDB is empty.
func (db *LSDB) NextExpiry() (time.Time, bool) {
	var min time.Time
	found := false
	for _, b := range db.snap.Load().buckets {
		for _, e := range b {
			if t := e.rec.ExpiresAt(); !found || t.Before(min) {
				min, found = t, true
			}
		}
	}
	return min, found
}
