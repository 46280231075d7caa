package mesh

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/linkstate"
)

// listedLSDB is an LSDB on the clock *now with rgb's records installed by
// install(minor, members...).
func listedLSDB(t *testing.T, now *time.Time) (*linkstate.LSDB, func(minor uint32, members ...string)) {
	t.Helper()
	kr := linkstate.NewKeyring()
	if err := kr.SetOrgKey(orgKey); err != nil {
		t.Fatal(err)
	}
	if err := kr.AddRG("rgb"); err != nil {
		t.Fatal(err)
	}
	db, err := linkstate.New(linkstate.Options{Keyring: kr, Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return db, func(minor uint32, members ...string) {
		t.Helper()
		r := &linkstate.Record{RG: "rgb", Version: linkstate.Version{Epoch: 1, Minor: minor}, Master: members[0],
			IssuedAt: now.Truncate(time.Second), TTL: time.Minute}
		for _, m := range members {
			r.Members = append(r.Members, linkstate.Member{Name: m, SMTP: listedSMTP(m), LinkState: listedLS(m)})
		}
		if err := kr.Sign(r); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Install(r); err != nil {
			t.Fatal(err)
		}
	}
}

// listedSMTP and listedLS are node's addresses in listedLSDB's records.
func listedSMTP(node string) string { return "127.0.0.1:25" + node[1:] }
func listedLS(node string) string   { return "127.0.0.1:691" + node[1:] }

// TestListedOutlivesRestart: the nodes recent records listed are in the
// file after a change (not rewritten more than once per listedSaveGap,
// the change saved when the gap is over, nor while nothing changed), a restart loads them, a node a record stopped
// listing stays known for the record's TTL from then (across the restart
// too), with its addresses (RecentMemberAt: a hop in doubt to it can be
// asked about), and entries past their TTL are dropped at load.
func TestListedOutlivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mesh-listed.json")
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	db, install := listedLSDB(t, &now)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	l := newListed(path, now, log) // no file yet: empty, quietly
	if logs.Len() > 0 || len(l.snapshot()) > 0 {
		t.Fatalf("a missing file: %d entries, log %q", len(l.snapshot()), logs.String())
	}
	install(1, "b1", "b2")
	l.update(db.Snapshot(), now, false)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("new entries not saved: %v", err)
	}

	// b2 leaves the record 100ms later: a change, but the file was
	// written less than listedSaveGap ago; it is saved once the gap is
	// over.
	now = t0.Add(100 * time.Millisecond)
	install(2, "b1")
	os.Remove(path)
	wait := l.update(db.Snapshot(), now, false)
	if _, err := os.Stat(path); err == nil {
		t.Fatal("saved twice within listedSaveGap")
	}
	if wait != listedSaveGap-100*time.Millisecond {
		t.Fatalf("a change waits %v for its save, want %v", wait, listedSaveGap-100*time.Millisecond)
	}
	now = now.Add(wait) // b2 was listed until t0+0.1s
	if l.update(db.Snapshot(), now, false); !exists(path) {
		t.Fatal("a change not saved when its wait was over")
	}
	// Nothing changes: no write until the live entries' times are
	// listedResave (here a quarter of the one-minute TTL) old.
	os.Remove(path)
	for _, d := range []time.Duration{3 * time.Second, 10 * time.Second, 15*time.Second + 250*time.Millisecond} {
		now = t0.Add(d)
		if wait := l.update(db.Snapshot(), now, false); wait != 0 || exists(path) != (d > 15*time.Second) {
			t.Fatalf("at t0+%v: file written %v (wait %v), want only once the live entries are 15s stale", d, exists(path), wait)
		}
	}
	if l.knows(db.Snapshot(), now, "rgb", "b3") {
		t.Fatal("a node no record listed is known")
	}
	if n, ls := l.memberAt(db.Snapshot(), now, listedSMTP("b2")); n != "b2" || ls != listedLS("b2") {
		t.Fatalf("the node left out at its mesh address: %q %q, want b2 %s", n, ls, listedLS("b2"))
	}
	if n, _ := l.memberAt(db.Snapshot(), now, "127.0.0.1:2599"); n != "" {
		t.Fatalf("an address no record listed is %q's", n)
	}

	// Restart with an empty LSDB 30s later: both remembered. b2 stopped
	// being listed at t0+0.1s, b1 was listed at the last save (t0+15.25s).
	empty, _ := listedLSDB(t, &now)
	load := func(at time.Duration) *listed {
		now = t0.Add(at)
		return newListed(path, now, log)
	}
	l = load(30 * time.Second)
	for _, n := range []string{"b1", "b2"} {
		if !l.knows(empty.Snapshot(), now, "rgb", n) {
			t.Errorf("after a restart: %s forgotten", n)
		}
		if got, ls := l.memberAt(empty.Snapshot(), now, listedSMTP(n)); got != n || ls != listedLS(n) {
			t.Errorf("after a restart: %s's mesh address names %q at %q", n, got, ls)
		}
	}
	if l.knows(empty.Snapshot(), now, "rga", "b1") || l.knows(empty.Snapshot(), now, "rgb", "b3") {
		t.Error("after a restart: a node known in a group no record placed it in")
	}
	// b2 was listed until t0+0.1s: known for a TTL from then, not from
	// the last record that listed it (t0).
	if l = load(60*time.Second + 50*time.Millisecond); !l.knows(empty.Snapshot(), now, "rgb", "b2") {
		t.Error("b2 forgotten within a TTL of the change that left it out")
	}
	// b2 past its TTL at load (t0+0.1s+60s), b1 not yet (t0+15.25s+60s).
	l = load(61 * time.Second)
	got := l.snapshot()
	if _, ok := got[listedKey{"rgb", "b2"}]; ok || len(got) != 1 {
		t.Errorf("loaded at t0+61s: %v, want b1 only (b2's TTL ran out at load)", got)
	}
	if !l.knows(empty.Snapshot(), now, "rgb", "b1") {
		t.Error("b1 forgotten within its TTL")
	}
	// And in memory, b1 goes once its TTL has passed.
	now = t0.Add(76 * time.Second)
	if l.knows(empty.Snapshot(), now, "rgb", "b1") {
		t.Error("b1 still known past its TTL")
	}
	if n, _ := l.memberAt(empty.Snapshot(), now, listedSMTP("b1")); n != "" {
		t.Error("b1's address still names it past its TTL")
	}
	if l = load(76 * time.Second); len(l.snapshot()) != 0 {
		t.Errorf("loaded past every TTL: %v", l.snapshot())
	}
	if logs.Len() > 0 {
		t.Errorf("a good file logged: %q", logs.String())
	}
}

// TestListedBadFile: a file that does not decode is logged and the memory
// starts empty; entries that no record could have made (no name, a TTL
// out of range, a time after now) are dropped, the others kept.
func TestListedBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mesh-listed.json")
	now := time.Unix(1_800_000_000, 0).UTC()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for _, bad := range []string{"{not json", `["rgb"]`, `{"rgb":{"b1":{"last":"yesterday","ttl_ns":60000000000}}}`, "\x00\xff"} {
		logs.Reset()
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		l := newListed(path, now, log)
		if n := len(l.snapshot()); n != 0 {
			t.Errorf("%q: %d entries, want none", bad, n)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), path) {
			t.Errorf("%q: no warning naming the file: %q", bad, logs.String())
		}
	}
	ok := now.Add(-time.Second).Format(time.RFC3339)
	file := `{"rgb":{"good":{"last":"` + ok + `","ttl_ns":60000000000},` +
		`"future":{"last":"` + now.Add(time.Hour).Format(time.RFC3339) + `","ttl_ns":60000000000},` +
		`"zero-ttl":{"last":"` + now.Format(time.RFC3339) + `","ttl_ns":0},` +
		`"huge-ttl":{"last":"` + ok + `","ttl_ns":` + "9223372036854775807" + `},` +
		`"":{"last":"` + ok + `","ttl_ns":60000000000}},` +
		`"":{"x":{"last":"` + ok + `","ttl_ns":60000000000}}, "rgc":null}`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	got := newListed(path, now, log).snapshot()
	if _, ok := got[listedKey{"rgb", "good"}]; !ok || len(got) != 1 {
		t.Errorf("loaded %v, want rgb/good only", got)
	}
}

// FuzzDecodeListed: whatever the file holds, decoding does not panic and
// keeps only entries a record could have made, within their TTL.
func FuzzDecodeListed(f *testing.F) {
	f.Add([]byte(`{"rgb":{"b1":{"last":"2027-01-15T08:00:00Z","ttl_ns":3600000000000}}}`))
	f.Add([]byte(`{"rgb":{"b1":{"last":"2027-01-15T09:00:00Z","ttl_ns":1}},"rgc":{}}`))
	f.Add([]byte(`{`))
	now := time.Date(2027, 1, 15, 8, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeListed(b, now)
		if err != nil {
			return
		}
		for k, e := range got {
			if k.rg == "" || k.node == "" || e.ttl < linkstate.MinTTL || e.ttl > linkstate.MaxTTL ||
				e.last.After(now) || now.Sub(e.last) > e.ttl || e.live {
				t.Fatalf("kept %v: %+v", k, e)
			}
		}
	})
}

// snapshot copies the entries.
func (l *listed) snapshot() map[listedKey]listedAt {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[listedKey]listedAt, len(l.seen))
	for k, e := range l.seen {
		out[k] = *e
	}
	return out
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
