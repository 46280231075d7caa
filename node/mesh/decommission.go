package mesh

import (
	"errors"
	"fmt"
	"time"

	"github.com/meshd/meshd/linkstate"
)

var (
	// ErrUnknownRG: the routing group is not in this node's configuration.
	ErrUnknownRG = errors.New("mesh: no such routing group in the organisation")
	// ErrCannotSign: this node holds no key that signs the group's
	// records (an Ed25519 group is removed through its own nodes).
	ErrCannotSign = errors.New("mesh: this node cannot sign for that routing group")
)

// RemoveRG decommissions a routing group: it originates a signed
// tombstone for it, above every version of the group this node has seen,
// and installs it, so it floods like any record (to this group's members
// over port 691, to other groups over X-LINK2STATE). Every node then stops
// routing to the group; its domains stay known as removed for 2×TTL
// (the tombstone's lifetime, which also keeps an old copy of the record
// from coming back) and mail waiting for them fails with a DSN.
//
// Any node holding a key that signs the group's records can do it: every
// node for a group signed with the org key, its own nodes for a group
// with Ed25519 keys. Removing a group that is already removed returns its
// tombstone.
func (m *Mesh) RemoveRG(rg string) (*linkstate.Record, error) {
	if !m.cfg.Keyring.Known(rg) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownRG, rg)
	}
	now := m.cfg.Now()
	v, ttl := linkstate.Version{}, m.topology().TTL
	if held, ok := m.db.Snapshot().Lookup(rg); ok {
		if held.Tombstone {
			return held, nil
		}
		v, ttl = held.Version, held.TTL
	}
	if last, ok := m.owned.last(rg); ok && last.Version.Compare(v) > 0 {
		v = last.Version
		if last.TTL > 0 {
			ttl = last.TTL
		}
	}
	tomb := &linkstate.Record{RG: rg, Tombstone: true, Master: m.cfg.Node, TTL: ttl,
		IssuedAt: now.Truncate(time.Second), Version: linkstate.Version{Epoch: v.Epoch + 1}}
	if err := m.cfg.Keyring.Sign(tomb); err != nil {
		if errors.Is(err, linkstate.ErrNoSigningKey) {
			return nil, fmt.Errorf("%w %q (its records are signed with its Ed25519 key: run this on one of its nodes): %w", ErrCannotSign, rg, err)
		}
		return nil, fmt.Errorf("mesh: remove %s: %w", rg, err)
	}
	if _, err := m.db.Install(tomb); err != nil {
		return nil, fmt.Errorf("mesh: remove %s: %w", rg, err)
	}
	m.log.Warn("routing group removed: tombstone originated", "record_rg", rg, "version", versionString(tomb.Version))
	return tomb, nil
}

// decommissioned reports whether this node's own group has been removed
// (a tombstone for it is held, or was: the removal is kept in
// Config.OwnedFile for good): its master then originates nothing, so the
// group cannot come back above its tombstone, nor as a zombie after the
// tombstone aged out. Re-creating a removed group under the same name
// takes deleting that file on its nodes.
func (m *Mesh) decommissioned() bool {
	if r, ok := m.db.Snapshot().Lookup(m.cfg.RG); ok {
		return r.Tombstone
	}
	return m.owned.removed(m.cfg.RG)
}

func versionString(v linkstate.Version) string {
	return fmt.Sprintf("%d.%d.%d.%d", v.Epoch, v.Major, v.Minor, v.User)
}
