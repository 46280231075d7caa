package adminapi

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/meshd/meshd/linkstate"
)

// FormatVersion writes a record version as Epoch.Major.Minor.User.
func FormatVersion(v linkstate.Version) string {
	return fmt.Sprintf("%d.%d.%d.%d", v.Epoch, v.Major, v.Minor, v.User)
}

// FromRecords turns link-state records into the LSDB view, sorted by
// routing group, connectors by ID, pairs by source and target. admin and
// penalties (keyed by connector ID) annotate the connectors of localRG.
func FromRecords(recs []*linkstate.Record, now time.Time, localRG string, admin map[string]string, penalties map[string]float64) []RGRecord {
	out := make([]RGRecord, 0, len(recs))
	for _, r := range recs {
		rr := RGRecord{
			RG: r.RG, Version: FormatVersion(r.Version), Master: r.Master, IssuedAt: r.IssuedAt.UTC(),
			AgeSeconds: now.Sub(r.IssuedAt).Round(time.Second).Seconds(), TTLSeconds: r.TTL.Seconds(),
			Tombstone: r.Tombstone, KeyID: r.KeyID,
			Members: []RecordMember{}, AddressSpaces: spaces(r.AddressSpaces), Connectors: []ConnectorInfo{},
		}
		for _, m := range r.Members {
			rr.Members = append(rr.Members, RecordMember{Name: m.Name, SMTP: m.SMTP, LinkState: m.LinkState, Priority: m.Priority})
		}
		slices.SortFunc(rr.Members, func(a, b RecordMember) int { return cmp.Compare(a.Name, b.Name) })
		for i := range r.Connectors {
			c := &r.Connectors[i]
			ci := ConnectorInfo{
				ID: c.ID, From: c.From, To: c.To, Cost: c.Cost, Up: c.Up(), Suppressed: c.Suppressed, Bridge: c.Bridge,
				Smarthost: c.Smarthost, SourceBridgeheads: c.SourceBridgeheads, TargetBridgeheads: c.TargetBridgeheads,
				Pairs: []Pair{},
			}
			if c.To == "" {
				ci.AddressSpaces = spaces(c.AddressSpaces)
			}
			if r.RG == localRG {
				if st := admin[c.ID]; st != "" && st != "auto" {
					ci.Admin = st
				}
				if p, ok := penalties[c.ID]; ok {
					ci.Penalty = &p
				}
			}
			for _, p := range c.Pairs {
				ci.Pairs = append(ci.Pairs, Pair{Source: p.Source, Target: p.Target, Up: p.Up})
			}
			slices.SortFunc(ci.Pairs, func(a, b Pair) int {
				return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Target, b.Target))
			})
			rr.Connectors = append(rr.Connectors, ci)
		}
		slices.SortFunc(rr.Connectors, func(a, b ConnectorInfo) int { return cmp.Compare(a.ID, b.ID) })
		out = append(out, rr)
	}
	slices.SortFunc(out, func(a, b RGRecord) int { return cmp.Compare(a.RG, b.RG) })
	return out
}

// Digest formats an LSDB digest.
func Digest(d [32]byte) string { return hex.EncodeToString(d[:]) }

func spaces(in []linkstate.AddressSpace) []AddressSpace {
	out := make([]AddressSpace, 0, len(in))
	for _, a := range in {
		out = append(out, AddressSpace{Pattern: a.Pattern, Cost: a.Cost})
	}
	slices.SortFunc(out, func(a, b AddressSpace) int {
		return cmp.Or(cmp.Compare(a.Pattern, b.Pattern), cmp.Compare(a.Cost, b.Cost))
	})
	return out
}
