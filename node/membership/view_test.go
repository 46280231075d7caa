package membership

import "testing"

// A member that drains is ranked after every member that does not,
// whatever its priority: it is master only when every member drains.
func TestRankDrainingLast(t *testing.T) {
	a := Member{Name: "a", Meta: Meta{Priority: 10, Draining: true}}
	b := Member{Name: "b"}
	c := Member{Name: "c", Meta: Meta{Priority: 5}}
	if v := newView([]Member{a, b, c}, nil); v.Master != "c" || v.Members[2].Name != "a" {
		t.Fatalf("master %s, order %v: want c master and the draining a last", v.Master, v.Members)
	}
	a.Draining = false
	if v := newView([]Member{a, b, c}, nil); v.Master != "a" {
		t.Fatalf("master %s, want a (highest priority) once it no longer drains", v.Master)
	}
	a.Draining, b.Draining, c.Draining = true, true, true
	if v := newView([]Member{a, b, c}, nil); v.Master != "a" {
		t.Fatalf("all draining: master %s, want a by priority", v.Master)
	}
}
