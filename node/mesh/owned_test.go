package mesh

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/meshd/meshd/linkstate"
)

// TestOwnershipOutlivesRecordsAndRestarts: the owners learned from
// records survive a restart (the file); a group that left the
// configuration is removed at the next sweep and forgotten 2×TTL later; a
// tombstone removes a group; a newer record brings it back.
func TestOwnershipOutlivesRecordsAndRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mesh-owned.json")
	known := map[string]bool{"rga": true, "rgb": true, "rgc": true}
	isKnown := func(rg string) bool { return known[rg] }
	o, err := newOwnership("rga", path, time.Minute, map[string][]string{"rga": {"rga.test"}}, isKnown)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	rec := func(rg string, epoch uint64, pats ...string) *linkstate.Record {
		r := &linkstate.Record{RG: rg, Version: linkstate.Version{Epoch: epoch}, TTL: time.Minute, IssuedAt: now}
		for _, p := range pats {
			r.AddressSpaces = append(r.AddressSpaces, linkstate.AddressSpace{Pattern: p, Cost: 1})
		}
		return r
	}
	if !o.update([]*linkstate.Record{rec("rgb", 1, "rgb.test", "*"), rec("rgc", 3, "*.rgc.test")}) {
		t.Fatal("new owners are a change")
	}
	if err := o.save(); err != nil {
		t.Fatal(err)
	}
	// Restart: the records are gone, the owners are not.
	o, err = newOwnership("rga", path, time.Minute, map[string][]string{"rga": {"rga.test"}}, isKnown)
	if err != nil {
		t.Fatal(err)
	}
	set := o.spaces()
	for _, d := range []string{"rga.test", "rgb.test", "x.rgc.test"} {
		if !set.Owns(d) {
			t.Errorf("%s not owned after restart", d)
		}
	}
	if set.Owns("elsewhere.example") || set.Owns("rgc.test") {
		t.Error("\"*\" or a wildcard's bare parent counted as owned")
	}
	// rgc leaves the configuration: removed, then forgotten after 2×TTL.
	delete(known, "rgc")
	if !o.sweep(now) || o.spaces().Owns("x.rgc.test") {
		t.Fatal("rgc out of the configuration is still a live owner")
	}
	if last, ok := o.last("rgc"); !ok || last.Removed.IsZero() || last.Version.Epoch != 3 {
		t.Fatalf("rgc: %+v %v", last, ok)
	}
	if o.sweep(now.Add(119 * time.Second)); o.spaces().Len() == 2 {
		t.Fatal("rgc forgotten before 2×TTL")
	}
	if o.sweep(now.Add(2 * time.Minute)); func() bool { _, ok := o.last("rgc"); return ok }() {
		t.Fatal("rgc not forgotten after 2×TTL")
	}
	// A tombstone removes rgb; an older copy of its record does not bring
	// it back, a newer one does.
	tomb := &linkstate.Record{RG: "rgb", Tombstone: true, Version: linkstate.Version{Epoch: 2}, TTL: time.Minute, IssuedAt: now}
	o.update([]*linkstate.Record{tomb})
	if o.spaces().Owns("rgb.test") {
		t.Fatal("rgb owned after its tombstone")
	}
	o.update([]*linkstate.Record{rec("rgb", 1, "rgb.test")})
	if o.spaces().Owns("rgb.test") {
		t.Fatal("an old copy brought rgb back")
	}
	o.update([]*linkstate.Record{rec("rgb", 5, "rgb.test")})
	if !o.spaces().Owns("rgb.test") {
		t.Fatal("a newer record did not bring rgb back")
	}
}

// TestOwnGroupRemovalIsKept: the removal of this node's own group is not
// forgotten when its tombstone ages out, so its master never comes back
// as a zombie.
func TestOwnGroupRemovalIsKept(t *testing.T) {
	o, err := newOwnership("rga", "", time.Minute, nil, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	for _, rg := range []string{"rga", "rgb"} {
		o.update([]*linkstate.Record{{RG: rg, Tombstone: true, Version: linkstate.Version{Epoch: 2}, TTL: time.Minute, IssuedAt: now}})
	}
	o.sweep(now.Add(time.Hour))
	if !o.removed("rga") {
		t.Error("own group's removal forgotten")
	}
	if o.removed("rgb") {
		t.Error("another group's removal kept beyond 2×TTL")
	}
}
