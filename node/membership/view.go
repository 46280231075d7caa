package membership

import (
	"cmp"
	"slices"
)

// Member is one live node of the pool.
type Member struct {
	Name string `json:"name"`
	Addr string `json:"gossip"` // gossip address host:port
	Meta
}

// View is a pool's membership at one moment: the live, verified members
// of this routing group sorted by election rank (the master first), and
// apart from them the live ones that are not verified (by name).
type View struct {
	Members []Member `json:"members"`
	Master  string   `json:"master"` // "" when no member is alive (never for a running pool: it has itself)
	// Unverified are gossip members whose identity is not proven
	// (Config.Verify): never master, never a member for anything else.
	Unverified []Unverified `json:"unverified,omitempty"`
}

// Unverified is a live gossip member that does not count, and why.
type Unverified struct {
	Member
	Reason string `json:"reason"`
}

// rank orders members for master election: members that do not drain
// first (a node leaving service hands the role on while it drains, so
// stopping it later moves nothing), then higher priority, then the
// smaller name. Every member computes the same order from the same set.
func rank(a, b Member) int {
	if a.Draining != b.Draining {
		if a.Draining {
			return 1
		}
		return -1
	}
	if a.Priority != b.Priority {
		return cmp.Compare(b.Priority, a.Priority)
	}
	return cmp.Compare(a.Name, b.Name)
}

func newView(members []Member, unverified []Unverified) View {
	ms := slices.Clone(members)
	slices.SortFunc(ms, rank)
	un := slices.Clone(unverified)
	slices.SortFunc(un, func(a, b Unverified) int { return cmp.Compare(a.Name, b.Name) })
	v := View{Members: ms, Unverified: un}
	if len(ms) > 0 {
		v.Master = ms[0].Name
	}
	return v
}

// Member returns the named member of the view.
func (v View) Member(name string) (Member, bool) {
	for _, m := range v.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// Equal reports whether two views have the same members (with the same
// metadata), the same master and the same unverified members.
func (v View) Equal(o View) bool {
	return v.Master == o.Master && slices.Equal(v.Members, o.Members) && slices.Equal(v.Unverified, o.Unverified)
}
