package mesh

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/meshd/meshd/internal/atomicfile"
	"github.com/meshd/meshd/linkstate"
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
//
// The memory is kept in Config.ListedFile so that it outlives a restart
// of this node: a delivering node restarted while such a record is
// current would otherwise forget the nodes left out, just when their
// resends arrive. The file is written from the run loop only, when an
// entry came or went (at most once per listedSaveGap, the change saved
// when the gap is over) and, while nodes are listed, every listedResave,
// so that its times lag by no more.
type listed struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	folded bool   // the LSDB was folded in once
	seq    uint64 // sequence of the LSDB folded in last
	seen   map[listedKey]*listedAt
	dirty  bool      // an entry came, went or changed since the last save
	saved  time.Time // last save (zero: none yet)
}

type listedKey struct{ rg, node string }

type listedAt struct {
	last time.Time     // last seen listed; for a live entry, when it was last folded
	ttl  time.Duration // of the last record that listed it
	live bool          // the LSDB lists it now
	// The node's mesh SMTP and port-691 addresses in that record: a hop
	// in doubt to a node its group's record leaves out can still be
	// asked about (RecentMemberAt).
	smtp, linkState string
}

const (
	// listedSaveGap bounds the write rate of the file; a change waits
	// at most this long for its save.
	listedSaveGap = 250 * time.Millisecond
	// listedResave is how stale the file's times of nodes still listed
	// may grow (at most a quarter of their TTL).
	listedResave = time.Minute
)

// newListed loads path ("" keeps the memory in RAM only). Entries past
// their TTL are dropped; a file that cannot be read or decoded is logged
// and the memory starts empty: it only ever widens which nodes are known,
// so losing it costs at most the duplicates it exists to prevent.
func newListed(path string, now time.Time, log *slog.Logger) *listed {
	l := &listed{path: path, log: log, seen: map[listedKey]*listedAt{}}
	if path == "" {
		return l
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l
	}
	if err == nil {
		l.seen, err = decodeListed(b, now)
	}
	if err != nil {
		log.Warn("mesh: unreadable listed-nodes file; starting with no memory of recent records", "path", path, "err", err)
		l.seen = map[listedKey]*listedAt{}
	}
	return l
}

// listedFile is the file's form: routing group → node → entry.
type listedFile map[string]map[string]listedEntry

type listedEntry struct {
	Last      time.Time     `json:"last"`
	TTL       time.Duration `json:"ttl_ns"`
	SMTP      string        `json:"smtp,omitempty"`
	LinkState string        `json:"ls,omitempty"`
}

// decodeListed reads the file, keeping the entries still within their TTL
// at now. An entry with no name, a TTL a record cannot carry or a time
// after now is dropped, whatever the rest says; an address that is not
// host:port is left out.
func decodeListed(b []byte, now time.Time) (map[listedKey]*listedAt, error) {
	var f listedFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	out := map[listedKey]*listedAt{}
	for rg, nodes := range f {
		for node, e := range nodes {
			if rg == "" || node == "" || e.TTL < linkstate.MinTTL || e.TTL > linkstate.MaxTTL ||
				e.Last.After(now) || now.Sub(e.Last) > e.TTL {
				continue
			}
			out[listedKey{rg, node}] = &listedAt{last: e.Last, ttl: e.TTL, smtp: hostPort(e.SMTP), linkState: hostPort(e.LinkState)}
		}
	}
	return out, nil
}

// foldLocked takes the records of snap in when the LSDB changed since the
// last fold: nodes listed are live (seen now), nodes no longer listed were
// last seen now. Entries past their TTL go. Under l.mu.
func (l *listed) foldLocked(snap *linkstate.Snapshot, now time.Time) {
	if !l.folded || l.seq != snap.Seq() {
		l.folded, l.seq = true, snap.Seq()
		cur := map[listedKey]listedAt{}
		for _, r := range snap.Records() {
			for _, mb := range r.Members {
				cur[listedKey{r.RG, mb.Name}] = listedAt{last: now, ttl: r.TTL, live: true, smtp: mb.SMTP, linkState: mb.LinkState}
			}
		}
		for k, c := range cur {
			e := l.seen[k]
			if e == nil || e.ttl != c.ttl || e.smtp != c.smtp || e.linkState != c.linkState {
				l.dirty = true
			}
			if e == nil {
				e = &listedAt{}
				l.seen[k] = e
			}
			*e = c
		}
		for k, e := range l.seen {
			if _, ok := cur[k]; !ok && e.live {
				e.last, e.live = now, false // listed until this change
				l.dirty = true
			}
		}
	}
	for k, e := range l.seen {
		if !e.known(now) {
			delete(l.seen, k)
			l.dirty = true
		}
	}
}

// knows reports whether a record of rg listed node within that record's
// TTL (the current LSDB included).
func (l *listed) knows(snap *linkstate.Snapshot, now time.Time, rg, node string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.foldLocked(snap, now)
	e, ok := l.seen[listedKey{rg, node}]
	return ok && e.known(now)
}

// known reports whether the entry still names a node a record listed:
// the LSDB lists it now, or did within the TTL of the last record that did.
func (e *listedAt) known(now time.Time) bool { return e.live || now.Sub(e.last) <= e.ttl }

// update folds snap in and saves the file when it is due (or always, with
// force: a graceful stop): an entry came, went or changed and the last
// save is listedSaveGap old, or nodes are listed and the file's times of
// them are listedResave (at most a quarter of their TTL) old. A change
// not saved yet for the gap returns how long until it is due. Called from
// the run loop only, on every LSDB change, every second and when a wait
// it returned has passed.
func (l *listed) update(snap *linkstate.Snapshot, now time.Time, force bool) (wait time.Duration) {
	l.mu.Lock()
	l.foldLocked(snap, now)
	if l.path == "" {
		l.mu.Unlock()
		return 0
	}
	if !force && !l.dueLocked(now) {
		if l.dirty {
			wait = max(listedSaveGap-now.Sub(l.saved), time.Millisecond)
		}
		l.mu.Unlock()
		return wait
	}
	f := listedFile{}
	for k, e := range l.seen {
		if e.live {
			e.last = now // listed at least until this save
		}
		if f[k.rg] == nil {
			f[k.rg] = map[string]listedEntry{}
		}
		f[k.rg][k.node] = listedEntry{Last: e.last.UTC(), TTL: e.ttl, SMTP: e.smtp, LinkState: e.linkState}
	}
	l.dirty, l.saved = false, now
	l.mu.Unlock()
	b, err := json.Marshal(f)
	if err == nil {
		err = atomicfile.Write(l.path, append(b, '\n'), 0o600)
	}
	if err != nil {
		l.log.Warn("mesh: cannot save listed-nodes file", "path", l.path, "err", err)
	}
	return 0
}

func (l *listed) dueLocked(now time.Time) bool {
	since := now.Sub(l.saved)
	if since < listedSaveGap {
		return false
	}
	if l.dirty {
		return true
	}
	for _, e := range l.seen {
		if e.live && since >= min(listedResave, e.ttl/4) {
			return true
		}
	}
	return false
}

// memberAt names the node a record listed within its TTL with the mesh
// SMTP listener addr, and its port-691 address then ("" when none; the
// one listed last when several were).
func (l *listed) memberAt(snap *linkstate.Snapshot, now time.Time, addr string) (node, linkState string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.foldLocked(snap, now)
	var best time.Time
	for k, e := range l.seen {
		if addr == "" || e.smtp != addr || !e.known(now) {
			continue
		}
		at := e.last
		if e.live {
			at = now
		}
		if node == "" || at.After(best) || at.Equal(best) && k.node < node {
			node, linkState, best = k.node, e.linkState, at
		}
	}
	return node, linkState
}

// hostPort is s when it is host:port, else "".
func hostPort(s string) string {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return ""
	}
	return s
}

// RecentMemberAt names the node whose mesh SMTP listener is addr in a
// record the LSDB holds or held within that record's TTL, and its
// port-691 address: a hop in doubt to a node its group's current record
// leaves out is asked about there (node/holds) instead of waiting
// mesh.in_doubt_timeout for an answer nobody could give.
func (m *Mesh) RecentMemberAt(addr string) (name, linkState string) {
	return m.listed.memberAt(m.db.Snapshot(), m.cfg.Now(), addr)
}

// recentlyListed reports whether a record of rg listed node within that
// record's TTL, folding the LSDB in when it changed since the last fold.
func (m *Mesh) recentlyListed(rg, node string) bool {
	return m.listed.knows(m.db.Snapshot(), m.cfg.Now(), rg, node)
}
