package linkstate

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// recordPool builds copies of a few RGs' records: several versions each,
// equal-version conflicts (two masters), tombstones, and copies that are
// expired on arrival. It also returns, per RG, the copy every LSDB must
// end with: the greatest by (version, hash) among those not expired.
func recordPool(t testing.TB, k *Keyring, rnd *rand.Rand) ([]*Record, map[string][32]byte) {
	t.Helper()
	var pool []*Record
	for _, rg := range []string{"rg1", "rg2", "rg3", "rg4", "rg5"} {
		for minor := uint32(1); minor <= 4; minor++ {
			n := 1 + rnd.IntN(2) // 1 or 2 copies of this version
			for c := range n {
				pool = append(pool, rec(t, k, rg, 1, minor, 0, func(r *Record) {
					r.Master = r.RG + "-n" + itoa(c+1)
					r.Tombstone = rnd.IntN(4) == 0
					if r.Tombstone {
						tombstone(r)
					}
					if rnd.IntN(8) == 0 {
						r.IssuedAt = t0.Add(-3 * time.Hour) // expired even as a tombstone
					}
				}))
			}
		}
	}
	want := map[string][32]byte{}
	held := map[string]*Record{}
	for _, r := range pool {
		if !t0.Before(r.ExpiresAt()) {
			continue
		}
		h, err := HashRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := held[r.RG]; !ok || compareHeld(r.Version, h, o.Version, want[r.RG]) > 0 {
			held[r.RG], want[r.RG] = r, h
		}
	}
	return pool, want
}

// TestInstallOrderIndependent: any install order of the same records
// (stale versions, conflicts and tombstones included) ends in the same
// LSDB, byte for byte, with the same digest: the one the oracle predicts.
func TestInstallOrderIndependent(t *testing.T) {
	iterations := 3000
	if testing.Short() {
		iterations = 300
	}
	clock := newFakeClock(t0)
	k := testKeyring(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	const pools = 30
	for p := range pools {
		pool, want := recordPool(t, k, rnd)
		var refDigest [32]byte
		for it := range iterations / pools {
			order := append([]*Record(nil), pool...)
			rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			db, err := New(Options{Keyring: k, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range order {
				_, err := db.Install(r)
				if err != nil && !errors.Is(err, ErrStale) && !errors.Is(err, ErrExpired) {
					t.Fatalf("pool %d: install %s %v: %v", p, r.RG, r.Version, err)
				}
			}
			s := db.Snapshot()
			if s.Len() != len(want) {
				t.Fatalf("pool %d iteration %d: %d records, want %d", p, it, s.Len(), len(want))
			}
			for _, sum := range s.Summaries() {
				if sum.Hash != want[sum.RG] {
					t.Fatalf("pool %d iteration %d: %s holds %v, not the winning copy", p, it, sum.RG, sum.Version)
				}
			}
			if it == 0 {
				refDigest = s.Digest()
			} else if s.Digest() != refDigest {
				t.Fatalf("pool %d iteration %d: digest differs", p, it)
			}
		}
	}
}

// TestDiffConverges: two LSDBs holding random subsets of the same
// records, after one exchange driven by Diff (each sends what Diff says
// it must), hold the same records and digest.
func TestDiffConverges(t *testing.T) {
	iterations := 1000
	if testing.Short() {
		iterations = 100
	}
	clock := newFakeClock(t0)
	k := testKeyring(t)
	rnd := rand.New(rand.NewPCG(3, 4))
	pool, _ := recordPool(t, k, rnd)
	for it := range iterations {
		a, _ := New(Options{Keyring: k, Now: clock.Now})
		b, _ := New(Options{Keyring: k, Now: clock.Now})
		for _, r := range pool {
			switch rnd.IntN(3) {
			case 0:
				a.Install(r)
			case 1:
				b.Install(r)
			}
		}
		sa, sb := a.Snapshot(), b.Snapshot()
		send, request := Diff(sa.Summaries(), sb.Summaries())
		// b's view of the same exchange is the mirror image.
		bSend, bRequest := Diff(sb.Summaries(), sa.Summaries())
		if !equalStrings(send, bRequest) || !equalStrings(request, bSend) {
			t.Fatalf("iteration %d: Diff not symmetric", it)
		}
		for _, rg := range send {
			enc, _ := sa.Encoded(rg)
			if _, err := b.InstallEncoded(enc); err != nil {
				t.Fatalf("iteration %d: b refused %s: %v", it, rg, err)
			}
		}
		for _, rg := range request {
			enc, _ := sb.Encoded(rg)
			if _, err := a.InstallEncoded(enc); err != nil {
				t.Fatalf("iteration %d: a refused %s: %v", it, rg, err)
			}
		}
		da, db := a.Snapshot().Digest(), b.Snapshot().Digest()
		if !bytes.Equal(da[:], db[:]) {
			t.Fatalf("iteration %d: digests differ after exchange", it)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
