package linkstate

import (
	"slices"
	"sync"
)

// Subscription collects the RGs whose records changed (installed,
// replaced, expired) since the subscriber last asked. Changes coalesce:
// a writer never waits for a slow subscriber and no change is lost; the
// subscriber sees each changed RG at least once after the change.
type Subscription struct {
	db      *LSDB
	c       chan struct{}
	mu      sync.Mutex
	pending map[string]struct{}
}

// Subscribe starts collecting changes. Close the subscription when done.
func (db *LSDB) Subscribe() *Subscription {
	s := &Subscription{db: db, c: make(chan struct{}, 1), pending: map[string]struct{}{}}
	db.subMu.Lock()
	db.subs[s] = struct{}{}
	db.subMu.Unlock()
	return s
}

// C is signalled (capacity 1, never closed) when changes are pending.
func (s *Subscription) C() <-chan struct{} { return s.c }

// Changes returns and clears the pending changed RGs, sorted. Read the
// current Snapshot after calling it: it includes every change returned.
func (s *Subscription) Changes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return nil
	}
	out := make([]string, 0, len(s.pending))
	for rg := range s.pending {
		out = append(out, rg)
	}
	clear(s.pending)
	slices.Sort(out)
	return out
}

// Close stops the subscription. Pending changes are discarded.
func (s *Subscription) Close() {
	s.db.subMu.Lock()
	delete(s.db.subs, s)
	s.db.subMu.Unlock()
}

func (db *LSDB) notify(rgs []string) {
	db.subMu.Lock()
	defer db.subMu.Unlock()
	for s := range db.subs {
		s.mu.Lock()
		for _, rg := range rgs {
			s.pending[rg] = struct{}{}
		}
		s.mu.Unlock()
		select {
		case s.c <- struct{}{}:
		default:
		}
	}
}
