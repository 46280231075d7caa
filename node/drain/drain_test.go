package drain

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshd/meshd/node/membership"
	"github.com/meshd/meshd/queue"
)

type fakeServer struct{ refusing bool }

func (s *fakeServer) RefuseNew(on bool) { s.refusing = on }
func (s *fakeServer) Transactions() int { return 0 }

type fakeMesh struct{ draining bool }

func (m *fakeMesh) SetDraining(on bool)       { m.draining = on }
func (m *fakeMesh) DrainingMembers() []string { return nil }
func (m *fakeMesh) View() membership.View {
	return membership.View{Members: []membership.Member{{Name: "a1"}, {Name: "a2"}}}
}

type emptyQueue struct{}

func (emptyQueue) Stats() queue.Stats                          { return queue.Stats{} }
func (emptyQueue) List(queue.Filter) ([]*queue.Message, error) { return nil, nil }
func (emptyQueue) ShadowStats() queue.ShadowStats              { return queue.ShadowStats{} }

// A drain is saved before it takes effect and put back in force by the
// next Load: listeners refuse, the mesh hears of it, the queue is routed
// again; an empty node is done after two shadow checks, not before.
func TestDrainSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	deps := func(s *fakeServer, m *fakeMesh, retries *int) Deps {
		return Deps{Node: "a1", RG: "rga", DataDir: dir, Shadows: true, ShadowCheck: time.Second,
			Servers: []Server{s}, Mesh: m, Queue: emptyQueue{}, Retry: func() { *retries++ },
			Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	var s1 fakeServer
	var m1 fakeMesh
	var r1 int
	dr, err := Load(deps(&s1, &m1, &r1))
	if err != nil {
		t.Fatal(err)
	}
	if dr.Draining() || s1.refusing || m1.draining {
		t.Fatal("a fresh node drains")
	}
	if err := dr.Drain(); err != nil {
		t.Fatal(err)
	}
	if !s1.refusing || !m1.draining || r1 != 1 {
		t.Fatalf("drain not applied: refusing %v, mesh %v, retries %d", s1.refusing, m1.draining, r1)
	}
	if _, err := os.Stat(filepath.Join(dir, File)); err != nil {
		t.Fatalf("drain state not saved: %v", err)
	}

	var s2 fakeServer
	var m2 fakeMesh
	var r2 int
	dr2, err := Load(deps(&s2, &m2, &r2))
	if err != nil {
		t.Fatal(err)
	}
	if !dr2.Draining() || !s2.refusing || !m2.draining || r2 != 1 {
		t.Fatalf("restart lost the drain: draining %v, refusing %v, mesh %v, retries %d", dr2.Draining(), s2.refusing, m2.draining, r2)
	}
	st := dr2.DrainStatus()
	if st.Done || len(st.Members) != 1 || st.Members[0] != "a2" {
		t.Fatalf("status at once = done %v, members %v; want not done, [a2]", st.Done, st.Members)
	}
	now = now.Add(2 * time.Second)
	if st := dr2.DrainStatus(); !st.Done {
		t.Fatal("an empty node is not done after two shadow checks")
	}
	if err := dr2.Undrain(); err != nil {
		t.Fatal(err)
	}
	if dr2.Draining() || s2.refusing || m2.draining {
		t.Fatal("undrain not applied")
	}
	if dr3, err := Load(deps(&fakeServer{}, &fakeMesh{}, new(int))); err != nil || dr3.Draining() {
		t.Fatalf("after undrain a restart drains (%v)", err)
	}
}
