package linkstate

import (
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct{ now atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.now.Store(t.UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.now.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

func newTestDB(t testing.TB, clock *fakeClock) (*LSDB, *Keyring) {
	t.Helper()
	k := testKeyring(t)
	db, err := New(Options{Keyring: k, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return db, k
}

// rec returns a signed record of rg at version (1, major, minor, 0)
// issued at t0+issued.
func rec(t testing.TB, k *Keyring, rg string, major, minor uint32, issued time.Duration, mods ...func(*Record)) *Record {
	t.Helper()
	r := sampleRecord(rg)
	r.Version = Version{Epoch: 1, Major: major, Minor: minor}
	r.IssuedAt = t0.Add(issued)
	for _, m := range mods {
		m(r)
	}
	if err := k.Sign(r); err != nil {
		t.Fatal(err)
	}
	return r
}

func tombstone(r *Record) {
	r.Tombstone = true
	r.Members, r.Connectors, r.AddressSpaces = nil, nil, nil
}

func TestInstall(t *testing.T) {
	k := testKeyring(t)
	tests := []struct {
		name    string
		before  []*Record // installed first, must succeed
		rec     *Record
		changed bool
		want    error
	}{
		{"first record", nil, rec(t, k, "rg2", 1, 1, 0), true, nil},
		{"identical copy", []*Record{rec(t, k, "rg2", 1, 1, 0)}, rec(t, k, "rg2", 1, 1, 0), false, nil},
		{"newer minor", []*Record{rec(t, k, "rg2", 1, 1, 0)}, rec(t, k, "rg2", 1, 2, 0), true, nil},
		{"newer major beats higher minor", []*Record{rec(t, k, "rg2", 1, 9, 0)}, rec(t, k, "rg2", 2, 0, 0), true, nil},
		{"older", []*Record{rec(t, k, "rg2", 1, 2, 0)}, rec(t, k, "rg2", 1, 1, 0), false, ErrStale},
		{"ed25519 record", nil, rec(t, k, "rg1", 1, 1, 0), true, nil},
		{"unsigned", nil, sampleRecord("rg2"), false, ErrUnsigned},
		{"unknown RG", nil, func() *Record {
			r := sampleRecord("zz")
			r.Signature = macOf(testOrgKey, mustSigningBytes(t, r))
			return r
		}(), false, ErrUnknownRG},
		{"bad signature", nil, rec(t, k, "rg2", 1, 1, 0, func(r *Record) {}), false, nil},
		{"expired on arrival", nil, rec(t, k, "rg2", 1, 1, -time.Hour), false, ErrExpired},
		{"from the future", nil, rec(t, k, "rg2", 1, 1, time.Hour), false, ErrFuture},
		{"within clock skew", nil, rec(t, k, "rg2", 1, 1, 4*time.Minute), true, nil},
		{"invalid", nil, &Record{RG: "rg2"}, false, ErrInvalid},
		{"tombstone replaces", []*Record{rec(t, k, "rg2", 1, 1, 0)}, rec(t, k, "rg2", 1, 2, 0, tombstone), true, nil},
		{"tombstone refuses older", []*Record{rec(t, k, "rg2", 1, 2, 0, tombstone)}, rec(t, k, "rg2", 1, 1, 0), false, ErrStale},
		{"newer version revives", []*Record{rec(t, k, "rg2", 1, 2, 0, tombstone)}, rec(t, k, "rg2", 1, 3, 0), true, nil},
	}
	// A signature that no longer matches: tamper after signing.
	tests[8].rec.Version.User++
	tests[8].want = ErrBadSignature
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock(t0)
			db, err := New(Options{Keyring: k, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tt.before {
				if _, err := db.Install(r); err != nil {
					t.Fatal(err)
				}
			}
			changed, err := db.Install(tt.rec)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Install = %v, want %v", err, tt.want)
			}
			if changed != tt.changed {
				t.Errorf("changed = %v, want %v", changed, tt.changed)
			}
			if err == nil {
				got, ok := db.Snapshot().Lookup(tt.rec.RG)
				if !ok || got.Version != tt.rec.Version {
					t.Errorf("held %v, want version %v", got, tt.rec.Version)
				}
			}
		})
	}
}

// TestInstallConflict: two different records of one RG at one version
// (two masters that both believed they were master) resolve to the same
// one, the higher content hash, whatever the order.
func TestInstallConflict(t *testing.T) {
	clock := newFakeClock(t0)
	_, k := newTestDB(t, clock)
	a := rec(t, k, "rg2", 1, 1, 0, func(r *Record) { r.Master = "rg2-n1" })
	b := rec(t, k, "rg2", 1, 1, 0, func(r *Record) { r.Master = "rg2-n2" })
	ha, _ := HashRecord(a)
	hb, _ := HashRecord(b)
	winner := a
	if compareHeld(b.Version, hb, a.Version, ha) > 0 {
		winner = b
	}
	for _, order := range [][]*Record{{a, b}, {b, a}} {
		db, _ := newTestDB(t, clock)
		if _, err := db.Install(order[0]); err != nil {
			t.Fatal(err)
		}
		_, err := db.Install(order[1])
		if order[1] == winner && err != nil {
			t.Errorf("winner refused: %v", err)
		}
		if order[1] != winner && !errors.Is(err, ErrStale) {
			t.Errorf("loser: err = %v, want ErrStale", err)
		}
		got, _ := db.Snapshot().Get("rg2")
		if got.Master != winner.Master {
			t.Errorf("order %s first: held master %s, want %s", order[0].Master, got.Master, winner.Master)
		}
	}
}

func TestExpire(t *testing.T) {
	clock := newFakeClock(t0)
	db, k := newTestDB(t, clock)
	live := rec(t, k, "rg2", 1, 1, 0)               // TTL 1h: expires t0+1h
	tomb := rec(t, k, "rg3", 1, 1, 0, tombstone)    // kept until t0+2h
	later := rec(t, k, "rg4", 1, 1, 30*time.Minute) // expires t0+1h30m
	for _, r := range []*Record{live, tomb} {
		if _, err := db.Install(r); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(30 * time.Minute)
	if _, err := db.Install(later); err != nil {
		t.Fatal(err)
	}
	if at, ok := db.NextExpiry(); !ok || !at.Equal(t0.Add(time.Hour)) {
		t.Errorf("NextExpiry = %v %v", at, ok)
	}
	steps := []struct {
		at   time.Duration
		gone []string
		left []string
	}{
		{59 * time.Minute, nil, []string{"rg2", "rg3", "rg4"}},
		{time.Hour, []string{"rg2"}, []string{"rg3", "rg4"}},
		{90 * time.Minute, []string{"rg4"}, []string{"rg3"}},
		{2*time.Hour - time.Second, nil, []string{"rg3"}},
		{2 * time.Hour, []string{"rg3"}, nil},
	}
	for _, s := range steps {
		gone := db.Expire(t0.Add(s.at))
		if !reflect.DeepEqual(gone, s.gone) {
			t.Errorf("at +%v: expired %v, want %v", s.at, gone, s.gone)
		}
		var left []string
		for _, r := range db.Snapshot().All() {
			left = append(left, r.RG)
		}
		if !reflect.DeepEqual(left, s.left) {
			t.Errorf("at +%v: left %v, want %v", s.at, left, s.left)
		}
	}
	// The tombstone refused the old version while it was held...
	clock.Advance(time.Hour) // now t0+1h30m
	db2, _ := newTestDB(t, clock)
	if _, err := db2.Install(rec(t, k, "rg3", 1, 2, 80*time.Minute, tombstone)); err != nil {
		t.Fatal(err)
	}
	if _, err := db2.Install(rec(t, k, "rg3", 1, 1, 80*time.Minute)); !errors.Is(err, ErrStale) {
		t.Errorf("older than tombstone: %v", err)
	}
	// ...and any copy old enough to be behind an expired tombstone has
	// expired itself.
	if _, err := db2.Install(rec(t, k, "rg3", 1, 0, 0)); !errors.Is(err, ErrExpired) {
		t.Errorf("old copy: %v", err)
	}
}

func TestNeedsRefresh(t *testing.T) {
	r := &Record{IssuedAt: t0, TTL: time.Hour}
	for _, tt := range []struct {
		age, interval time.Duration
		want          bool
	}{
		{29 * time.Minute, 30 * time.Minute, false},
		{30 * time.Minute, 30 * time.Minute, true},
		{10 * time.Minute, 2 * time.Hour, false},
		{30 * time.Minute, 2 * time.Hour, true}, // half the TTL caps a long interval
		{0, 0, true},
	} {
		if got := r.NeedsRefresh(t0.Add(tt.age), tt.interval); got != tt.want {
			t.Errorf("age %v interval %v: %v, want %v", tt.age, tt.interval, got, tt.want)
		}
	}
}

func TestSnapshotIsImmutable(t *testing.T) {
	clock := newFakeClock(t0)
	db, k := newTestDB(t, clock)
	if _, err := db.Install(rec(t, k, "rg2", 1, 1, 0)); err != nil {
		t.Fatal(err)
	}
	s1 := db.Snapshot()
	d1 := s1.Digest()
	if _, err := db.Install(rec(t, k, "rg2", 1, 2, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Install(rec(t, k, "rg3", 1, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if r, _ := s1.Get("rg2"); r.Version.Minor != 1 || s1.Len() != 1 || s1.Digest() != d1 {
		t.Error("old snapshot changed")
	}
	s2 := db.Snapshot()
	if s2.Seq() <= s1.Seq() || s2.Len() != 2 || s2.Digest() == d1 {
		t.Errorf("new snapshot: seq %d len %d", s2.Seq(), s2.Len())
	}
	// Digest equals DigestSummaries over the summaries, and Summarize of
	// each record.
	want, err := DigestSummaries(s2.Summaries())
	if err != nil || want != s2.Digest() {
		t.Errorf("Digest differs from DigestSummaries: %v", err)
	}
	for _, r := range s2.Records() {
		s, err := Summarize(r)
		if err != nil {
			t.Fatal(err)
		}
		if enc, _ := s2.Encoded(r.RG); s.Hash != hashOf(enc) {
			t.Errorf("%s: summary hash differs from encoding hash", r.RG)
		}
	}
	// The LSDB holds its own copy: changing the caller's record is harmless.
	r := rec(t, k, "rg4", 1, 1, 0)
	if _, err := db.Install(r); err != nil {
		t.Fatal(err)
	}
	r.Members[0].Name = "changed"
	if got, _ := db.Snapshot().Get("rg4"); got.Members[0].Name == "changed" {
		t.Error("LSDB shares the caller's record")
	}
	// Tombstones are held but not live.
	if _, err := db.Install(rec(t, k, "rg4", 1, 2, 0, tombstone)); err != nil {
		t.Fatal(err)
	}
	s3 := db.Snapshot()
	if _, ok := s3.Get("rg4"); ok {
		t.Error("Get returns a tombstone")
	}
	if got, ok := s3.Lookup("rg4"); !ok || !got.Tombstone {
		t.Error("Lookup misses the tombstone")
	}
	if len(s3.Records()) != 2 || len(s3.All()) != 3 || len(s3.Summaries()) != 3 {
		t.Errorf("Records %d All %d Summaries %d", len(s3.Records()), len(s3.All()), len(s3.Summaries()))
	}
}

func TestInstallEncoded(t *testing.T) {
	clock := newFakeClock(t0)
	db, k := newTestDB(t, clock)
	src, _ := newTestDB(t, clock)
	if _, err := src.Install(rec(t, k, "rg1", 1, 1, 0)); err != nil {
		t.Fatal(err)
	}
	b, _ := src.Snapshot().Encoded("rg1")
	if changed, err := db.InstallEncoded(b); err != nil || !changed {
		t.Fatalf("InstallEncoded = %v, %v", changed, err)
	}
	if db.Snapshot().Digest() != src.Snapshot().Digest() {
		t.Error("digests differ after copying the record")
	}
	if _, err := db.InstallEncoded(b[:len(b)-1]); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated: %v", err)
	}
}

func TestSubscription(t *testing.T) {
	clock := newFakeClock(t0)
	db, k := newTestDB(t, clock)
	sub := db.Subscribe()
	defer sub.Close()
	for _, r := range []*Record{rec(t, k, "rg3", 1, 1, 0), rec(t, k, "rg2", 1, 1, 0), rec(t, k, "rg3", 1, 2, 0)} {
		if _, err := db.Install(r); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-sub.C():
	default:
		t.Fatal("no signal after installs")
	}
	if got := sub.Changes(); !reflect.DeepEqual(got, []string{"rg2", "rg3"}) {
		t.Errorf("changes %v", got)
	}
	if got := sub.Changes(); got != nil {
		t.Errorf("changes not cleared: %v", got)
	}
	// No change, no signal.
	if _, err := db.Install(rec(t, k, "rg3", 1, 2, 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.C():
		t.Error("signal without a change")
	default:
	}
	db.Expire(t0.Add(time.Hour))
	<-sub.C()
	if got := sub.Changes(); !reflect.DeepEqual(got, []string{"rg2", "rg3"}) {
		t.Errorf("expiry changes %v", got)
	}
	sub.Close()
	if _, err := db.Install(rec(t, k, "rg4", 1, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if got := sub.Changes(); got != nil {
		t.Errorf("closed subscription got %v", got)
	}
}

// TestConcurrentReaders runs readers against a writer (meaningful under
// -race): readers always see a consistent snapshot.
func TestConcurrentReaders(t *testing.T) {
	clock := newFakeClock(t0)
	db, k := newTestDB(t, clock)
	recs := make([]*Record, 200)
	for i := range recs {
		recs[i] = rec(t, k, "rg2", 1, uint32(i+1), 0)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint32
			for !stop.Load() {
				s := db.Snapshot()
				r, ok := s.Get("rg2")
				if !ok {
					continue
				}
				if r.Version.Minor < last {
					t.Errorf("version went back: %d after %d", r.Version.Minor, last)
					return
				}
				last = r.Version.Minor
				if sums := s.Summaries(); len(sums) != 1 || sums[0].Version != r.Version {
					t.Errorf("inconsistent snapshot")
					return
				}
				_ = s.Digest()
			}
		}()
	}
	for _, r := range recs {
		if _, err := db.Install(r); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
}
