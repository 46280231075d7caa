package linkstate

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkEncodeRecord: a realistic record (4 members, 5 connectors),
// given in canonical order as the master keeps it.
func BenchmarkEncodeRecord(b *testing.B) {
	r := canonical(sampleRecord("rg1"))
	if err := testKeyring(b).Sign(r); err != nil {
		b.Fatal(err)
	}
	buf, _ := EncodeRecord(r)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendRecord(buf[:0], r)
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	r := sampleRecord("rg1")
	if err := testKeyring(b).Sign(r); err != nil {
		b.Fatal(err)
	}
	enc, _ := EncodeRecord(r)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRecord(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRecords returns n signed records (HMAC, so verifying is cheap and
// the benchmark measures the LSDB), each with 4 members and 5 connectors.
func benchRecords(b *testing.B, k *Keyring, n int) []*Record {
	recs := make([]*Record, n)
	for i := range recs {
		rg := fmt.Sprintf("r%05d", i)
		if err := k.AddRG(rg); err != nil {
			b.Fatal(err)
		}
		r := sampleRecord(rg)
		if err := k.Sign(r); err != nil {
			b.Fatal(err)
		}
		recs[i] = r
	}
	return recs
}

// BenchmarkInstall10000: one op installs 10,000 records into an empty
// LSDB (verify, version check, copy-on-write publish), then reads the
// digest once.
func BenchmarkInstall10000(b *testing.B) {
	k := testKeyring(b)
	recs := benchRecords(b, k, 10000)
	now := func() time.Time { return t0 }
	b.ReportAllocs()
	for b.Loop() {
		db, _ := New(Options{Keyring: k, Now: now})
		for _, r := range recs {
			if _, err := db.Install(r); err != nil {
				b.Fatal(err)
			}
		}
		_ = db.Snapshot().Digest()
	}
}

// BenchmarkInstallEd25519: one Ed25519-verified install (replacing the
// previous version), the per-record cost of a flood.
func BenchmarkInstallEd25519(b *testing.B) {
	k := testKeyring(b)
	db, _ := New(Options{Keyring: k, Now: func() time.Time { return t0 }})
	const n = 1000
	recs := make([]*Record, n)
	for i := range recs {
		r := sampleRecord("rg1")
		r.Version.User = uint32(i)
		if err := k.Sign(r); err != nil {
			b.Fatal(err)
		}
		recs[i] = r
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if i == n {
			b.StopTimer()
			db, _ = New(Options{Keyring: k, Now: func() time.Time { return t0 }})
			i = 0
			b.StartTimer()
		}
		if _, err := db.Install(recs[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDigest10000: the org digest of 10,000 RGs from a fresh
// snapshot (sort, summaries, SHA-256).
func BenchmarkDigest10000(b *testing.B) {
	k := testKeyring(b)
	db, _ := New(Options{Keyring: k, Now: func() time.Time { return t0 }})
	for _, r := range benchRecords(b, k, 10000) {
		if _, err := db.Install(r); err != nil {
			b.Fatal(err)
		}
	}
	s := db.Snapshot()
	b.ReportAllocs()
	for b.Loop() {
		fresh := &Snapshot{seed: s.seed, buckets: s.buckets, n: s.n}
		_ = fresh.Digest()
	}
}

func BenchmarkDiff10000(b *testing.B) {
	k := testKeyring(b)
	db, _ := New(Options{Keyring: k, Now: func() time.Time { return t0 }})
	for _, r := range benchRecords(b, k, 10000) {
		if _, err := db.Install(r); err != nil {
			b.Fatal(err)
		}
	}
	local := db.Snapshot().Summaries()
	remote := append([]Summary(nil), local...)
	remote[5000].Version.Minor++
	b.ReportAllocs()
	for b.Loop() {
		Diff(local, remote)
	}
}

// BenchmarkDampingObserve: one observation folded into a connector's
// state (hysteresis, up/down, damping decay and penalty).
func BenchmarkDampingObserve(b *testing.B) {
	c, err := NewConnectorState(StateConfig{Hysteresis: HysteresisConfig{UpAfter: 1}})
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		c.Observe(now, "a", "x:25", i%2 == 0)
		c.Advertised(now, false)
		i++
	}
}

func BenchmarkDamperTransition(b *testing.B) {
	d, _ := NewDamper(DampingConfig{})
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Minute)
		d.Transition(now)
	}
}

func BenchmarkBridges10000(b *testing.B) {
	k := testKeyring(b)
	recs := benchRecords(b, k, 10000)
	// Ring plus chords: peer connectors point at other bench RGs.
	for i, r := range recs {
		for j := range r.Connectors {
			if r.Connectors[j].To != "" {
				r.Connectors[j].To = fmt.Sprintf("r%05d", (i+1+j*j*37)%len(recs))
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		Bridges(recs)
	}
}
