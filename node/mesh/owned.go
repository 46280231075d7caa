package mesh

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/meshd/meshd/internal/atomicfile"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/routing"
)

// ownership keeps which routing group owns which organisation domains
// independently of whether the group's record is in the LSDB right now:
// the domains declared in configuration, and the address spaces of the
// last record seen of every group, kept when the record ages out. A group
// is removed (decommissioned) when a tombstone for it is installed or it
// is no longer in the configuration; a removed group's domains are kept
// for 2×TTL, like the tombstone, so mail waiting for it is refused
// permanently rather than routed elsewhere, then forgotten.
//
// It is persisted (Config.OwnedFile) so that a restarted node still knows
// the owners it cannot reach, and knows which group left its configuration.
type ownership struct {
	self     string // this node's group: its removal is never forgotten
	path     string
	ttl      time.Duration
	declared map[string][]string // rg -> patterns from configuration
	known    func(rg string) bool

	mu  sync.Mutex
	rgs map[string]*ownedRG
}

type ownedRG struct {
	Spaces  []string          `json:"spaces"`           // patterns of its last record, "*" excluded
	Version linkstate.Version `json:"version"`          // of its last record or tombstone
	Removed time.Time         `json:"removed,omitzero"` // decommissioned at; zero while it exists
	TTL     time.Duration     `json:"ttl_ns,omitempty"` // of its last record
}

func newOwnership(self, path string, ttl time.Duration, declared map[string][]string, known func(string) bool) (*ownership, error) {
	o := &ownership{self: self, path: path, ttl: ttl, declared: declared, known: known, rgs: map[string]*ownedRG{}}
	if path == "" {
		return o, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return o, nil
	case err != nil:
		return nil, fmt.Errorf("mesh: read owned domains: %w", err)
	}
	if err := json.Unmarshal(b, &o.rgs); err != nil {
		return nil, fmt.Errorf("mesh: read owned domains %s: %w", path, err)
	}
	for rg, e := range o.rgs {
		if e == nil {
			delete(o.rgs, rg)
		}
	}
	return o, nil
}

// update folds records (tombstones included; normally those that just
// changed) into the set. It reports whether anything that routing or the
// file holds changed: the address spaces, a removal, or a new epoch (the
// base of a tombstone this node may have to originate later).
func (o *ownership) update(recs []*linkstate.Record) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	changed := false
	for _, r := range recs {
		e := o.rgs[r.RG]
		if e == nil {
			e = &ownedRG{}
			o.rgs[r.RG] = e
			changed = true
		}
		if r.Version.Compare(e.Version) < 0 {
			continue // an older copy than one already seen says nothing new
		}
		if r.Tombstone {
			if e.Removed.IsZero() {
				e.Removed = r.IssuedAt
				changed = true
			}
		} else {
			spaces := ownedPatterns(r.AddressSpaces)
			if !slices.Equal(spaces, e.Spaces) || !e.Removed.IsZero() || e.TTL != r.TTL {
				e.Spaces, e.Removed, e.TTL = spaces, time.Time{}, r.TTL
				changed = true
			}
		}
		changed = changed || r.Version.Epoch != e.Version.Epoch
		e.Version = r.Version
	}
	return changed
}

// sweep marks groups that left the configuration as removed (now), and
// forgets removed groups 2×TTL after their removal, like their tombstone.
func (o *ownership) sweep(now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	changed := false
	for rg, e := range o.rgs {
		if e.Removed.IsZero() && o.known != nil && !o.known(rg) {
			e.Removed = now // left the configuration: decommissioned here
			changed = true
		}
		ttl := max(e.TTL, o.ttl)
		// Our own group's removal stays: its nodes must not come back as
		// a zombie once the tombstone has aged out everywhere.
		if !e.Removed.IsZero() && rg != o.self && !now.Before(e.Removed.Add(2*ttl)) {
			delete(o.rgs, rg)
			changed = true
		}
	}
	return changed
}

// last returns what is known of rg's last record.
func (o *ownership) last(rg string) (ownedRG, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.rgs[rg]
	if !ok {
		return ownedRG{}, false
	}
	return *e, true
}

// removed reports whether rg is known as removed.
func (o *ownership) removed(rg string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.rgs[rg]
	return e != nil && !e.Removed.IsZero()
}

// spaces is the set for routing: declared domains of configured groups,
// then the remembered ones.
func (o *ownership) spaces() *routing.Owned {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []routing.OwnedSpace
	for rg, pats := range o.declared {
		if e := o.rgs[rg]; e != nil && !e.Removed.IsZero() {
			continue // a tombstone removed it, whatever the file says
		}
		for _, p := range pats {
			out = append(out, routing.OwnedSpace{RG: rg, Pattern: p})
		}
	}
	for rg, e := range o.rgs {
		for _, p := range e.Spaces {
			out = append(out, routing.OwnedSpace{RG: rg, Pattern: p, Removed: !e.Removed.IsZero()})
		}
	}
	return routing.NewOwned(out)
}

// save writes the set atomically (temporary file, fsync, rename).
func (o *ownership) save() error {
	if o.path == "" {
		return nil
	}
	o.mu.Lock()
	b, err := json.MarshalIndent(o.rgs, "", "  ")
	o.mu.Unlock()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(o.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("mesh: save owned domains: %w", err)
	}
	return nil
}

func ownedPatterns(spaces []linkstate.AddressSpace) []string {
	var out []string
	for _, as := range spaces {
		if as.Pattern != "*" && as.Pattern != "" {
			out = append(out, as.Pattern)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
