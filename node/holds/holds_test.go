package holds

import (
	"testing"
	"time"

	"github.com/meshd/meshd/linkstate"
)

type lsdbOnly struct{ db *linkstate.LSDB }

func (m lsdbOnly) LSDB() *linkstate.LSDB { return m.db }

// remembering is a mesh that also remembers nodes recent records listed.
type remembering struct {
	lsdbOnly
	recent map[string][2]string // mesh address -> name, port-691 address
}

func (m remembering) RecentMemberAt(addr string) (string, string) {
	r := m.recent[addr]
	return r[0], r[1]
}

// TestLocateRemembered: a mesh address the LSDB lists names its node; one
// it does not list names the node a recent record listed there when the
// mesh remembers it (so a hop in doubt to it is asked about, not left to
// mesh.in_doubt_timeout), and nobody otherwise.
func TestLocateRemembered(t *testing.T) {
	kr := linkstate.NewKeyring()
	key := []byte("0123456789abcdef0123456789abcdef")
	if err := kr.SetOrgKey(key); err != nil {
		t.Fatal(err)
	}
	if err := kr.AddRG("rgc"); err != nil {
		t.Fatal(err)
	}
	db, err := linkstate.New(linkstate.Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	r := &linkstate.Record{RG: "rgc", Version: linkstate.Version{Epoch: 1}, Master: "c2", IssuedAt: time.Now().Truncate(time.Second), TTL: time.Hour,
		Members: []linkstate.Member{{Name: "c2", SMTP: "127.0.0.1:2502", LinkState: "127.0.0.1:6912"}}}
	if err := kr.Sign(r); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Install(r); err != nil {
		t.Fatal(err)
	}
	mem := remembering{lsdbOnly{db}, map[string][2]string{
		"127.0.0.1:2501": {"c1", "127.0.0.1:6911"},
		"127.0.0.1:2502": {"stale", "127.0.0.1:1"},
	}}
	for _, tc := range []struct {
		mesh     LSDB
		addr     string
		name, ch string
	}{
		{mem, "127.0.0.1:2502", "c2", "127.0.0.1:6912"}, // the LSDB first
		{mem, "127.0.0.1:2501", "c1", "127.0.0.1:6911"}, // left out of rgc's record, remembered
		{mem, "127.0.0.1:2599", "", ""},
		{mem, "", "", ""},
		{lsdbOnly{db}, "127.0.0.1:2501", "", ""}, // no memory: nobody to ask
	} {
		a := &Asker{Mesh: tc.mesh}
		if name, ch := a.Locate(tc.addr); name != tc.name || ch != tc.ch {
			t.Errorf("Locate(%q) with %T: %q %q, want %q %q", tc.addr, tc.mesh, name, ch, tc.name, tc.ch)
		}
	}
}
