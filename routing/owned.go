package routing

import (
	"errors"
	"slices"
	"strings"
)

// ErrRemoved: the domain belongs to a routing group that was
// decommissioned (a tombstone deleted it, or it left the configuration).
// Mail for it will never be deliverable in the mesh: callers fail it
// permanently instead of waiting. Errors wrapping it also wrap ErrNoRoute.
var ErrRemoved = errors.New("routing group removed")

// OwnedSpace is an address space that belongs to a routing group of the
// organisation whether or not the group's record is in the LSDB right now:
// declared in configuration, or remembered from the group's last record.
type OwnedSpace struct {
	RG      string
	Pattern string // "example.com" or "*.example.com"; "*" is never owned
	// Removed marks a decommissioned group: its mail gets a failure DSN.
	Removed bool
}

// Owned is an immutable set of owned address spaces, indexed like the
// table's address spaces. Routing uses it only for groups that have no
// record in the table: while the owner is absent, its domains match no
// broader address space (an external "*" above all), so organisation
// mail waits at the point of failure instead of leaving the organisation.
type Owned struct {
	exact map[string][]OwnedSpace
	wild  map[string][]OwnedSpace
}

// NewOwned indexes spaces; invalid patterns and "*" are ignored.
func NewOwned(spaces []OwnedSpace) *Owned {
	o := &Owned{exact: map[string][]OwnedSpace{}, wild: map[string][]OwnedSpace{}}
	for _, s := range spaces {
		kind, key, _ := parsePattern(s.Pattern)
		s.Pattern = patternString(kind, key)
		switch kind {
		case patExact:
			o.exact[key] = addOwned(o.exact[key], s)
		case patWild:
			o.wild[key] = addOwned(o.wild[key], s)
		}
	}
	return o
}

func addOwned(list []OwnedSpace, s OwnedSpace) []OwnedSpace {
	for i, x := range list {
		if x.RG == s.RG {
			list[i].Removed = x.Removed && s.Removed // declared live anywhere: not removed
			return list
		}
	}
	list = append(list, s)
	slices.SortFunc(list, func(a, b OwnedSpace) int { return strings.Compare(a.RG, b.RG) })
	return list
}

// Len is the number of owned address spaces.
func (o *Owned) Len() int {
	if o == nil {
		return 0
	}
	n := 0
	for _, l := range o.exact {
		n += len(l)
	}
	for _, l := range o.wild {
		n += len(l)
	}
	return n
}

// Owns reports whether a routing group that is not removed owns domain
// (exact, or a wildcard of one of its parents).
func (o *Owned) Owns(domain string) bool {
	if o == nil {
		return false
	}
	dom, ok := normalizeDomain(domain)
	if !ok {
		return false
	}
	live := func(l []OwnedSpace) bool {
		for _, s := range l {
			if !s.Removed {
				return true
			}
		}
		return false
	}
	if live(o.exact[dom]) {
		return true
	}
	for s := dom; ; {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return false
		}
		s = s[i+1:]
		if live(o.wild[s]) {
			return true
		}
	}
}

// ghosts returns the owned spaces under key (exact or wildcard) whose
// routing group has no record in this table.
func (t *Table) ghosts(m map[string][]OwnedSpace, key string) []OwnedSpace {
	list := m[key]
	if len(list) == 0 {
		return nil
	}
	var out []OwnedSpace
	for _, s := range list {
		if i, ok := t.g.lookup(s.RG); ok && t.g.recs[i] != nil {
			continue // the record is here: its own address spaces speak for it
		}
		out = append(out, s)
	}
	return out
}
