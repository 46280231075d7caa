package mesh

import (
	"sync"
	"time"
)

// listed remembers which nodes each routing group's records listed, and
// when last. A master restarted with an empty disk originates its group's
// record with the members its fresh gossip view has found so far, maybe
// only itself; for a moment the mesh's record of the group leaves out
// nodes that are alive and hold mail. Were they unknown then, their mesh
// hops would be taken as mail from outside (their copy IDs not believed:
// a resend is no longer a duplicate) and their port-691 requests refused
// (shadows resubmitted: docs/shadow.md). So a node a record listed stays
// known for one record TTL after the last record that listed it.
type listed struct {
	mu   sync.Mutex
	seq  uint64
	seen map[string]listedAt // "rg/node"
}

type listedAt struct {
	at  time.Time
	ttl time.Duration
}

// recentlyListed reports whether a record of rg listed node within that
// record's TTL, folding the LSDB in when it changed since the last call.
func (m *Mesh) recentlyListed(rg, node string) bool {
	snap := m.db.Snapshot()
	now := m.cfg.Now()
	l := &m.listed
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil || l.seq != snap.Seq() {
		if l.seen == nil {
			l.seen = map[string]listedAt{}
		}
		l.seq = snap.Seq()
		for _, r := range snap.Records() {
			for _, mb := range r.Members {
				l.seen[r.RG+"/"+mb.Name] = listedAt{at: now, ttl: r.TTL}
			}
		}
		for k, v := range l.seen {
			if now.Sub(v.at) > v.ttl {
				delete(l.seen, k)
			}
		}
	}
	v, ok := l.seen[rg+"/"+node]
	return ok && now.Sub(v.at) <= v.ttl
}
