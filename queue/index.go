package queue

import (
	"container/heap"
	"slices"
	"strings"
	"time"
)

// item is what the index keeps per queued message.
type item struct {
	id       string
	size     int64
	received time.Time
	held     bool
	next     time.Time // earliest NextAttempt over Pending recipients
	pending  bool      // has a Pending recipient
	pos      int       // position in the heap; -1 when not in it
}

// dueable reports whether the item belongs in the due heap.
func (it *item) dueable() bool { return it.pending && !it.held }

// index is the in-memory view of the queue. Its zero value is not usable;
// callers hold Queue.mu.
type index struct {
	items  map[string]*item
	byNext dueHeap // dueable items by next

	bytes         int64 // total size of items
	reserved      int   // enqueues in flight
	reservedBytes int64
}

func newIndex() index { return index{items: make(map[string]*item)} }

// count returns messages and bytes including enqueues in flight, which is
// what the MaxMessages/MaxBytes bound applies to.
func (x *index) count() (int, int64) {
	return len(x.items) + x.reserved, x.bytes + x.reservedBytes
}

func (x *index) reserve(size int64) {
	x.reserved++
	x.reservedBytes += size
}

func (x *index) unreserve(size int64) {
	x.reserved--
	x.reservedBytes -= size
}

// put inserts or updates the entry for m.
func (x *index) put(m *Message) {
	it, ok := x.items[m.ID]
	if !ok {
		it = &item{id: m.ID, pos: -1}
		x.items[m.ID] = it
	}
	x.bytes += m.Size - it.size
	it.size = m.Size
	it.received = m.ReceivedAt
	it.held = m.Held
	it.pending = m.pending()
	it.next = m.NextAttempt
	switch {
	case it.dueable() && it.pos < 0:
		heap.Push(&x.byNext, it)
	case it.dueable():
		heap.Fix(&x.byNext, it.pos)
	case it.pos >= 0:
		heap.Remove(&x.byNext, it.pos)
	}
}

func (x *index) remove(id string) {
	it, ok := x.items[id]
	if !ok {
		return
	}
	if it.pos >= 0 {
		heap.Remove(&x.byNext, it.pos)
	}
	x.bytes -= it.size
	delete(x.items, id)
}

func (x *index) heapLen() int { return len(x.byNext) }

func (x *index) next() (time.Time, bool) {
	if len(x.byNext) == 0 {
		return time.Time{}, false
	}
	return x.byNext[0].next, true
}

// due returns the IDs of up to max dueable items with next <= now, earliest
// first, without touching the heap: a best-first walk that only expands
// nodes that are due, so it costs O(k log k) for k results.
func (x *index) due(now time.Time, max int) []string {
	return x.dueFunc(now, max, nil)
}

// dueFunc is due restricted to the items for which want (nil: every item)
// returns true; items it refuses do not count towards max.
func (x *index) dueFunc(now time.Time, max int, want func(id string) bool) []string {
	if len(x.byNext) == 0 || x.byNext[0].next.After(now) {
		return nil
	}
	var ids []string
	f := &posHeap{h: x.byNext, p: []int{0}}
	for f.Len() > 0 && (max <= 0 || len(ids) < max) {
		p := heap.Pop(f).(int)
		if id := x.byNext[p].id; want == nil || want(id) {
			ids = append(ids, id)
		}
		for _, c := range [2]int{2*p + 1, 2*p + 2} {
			if c < len(x.byNext) && !x.byNext[c].next.After(now) {
				heap.Push(f, c)
			}
		}
	}
	return ids
}

// list returns IDs matching f, oldest first.
func (x *index) list(f Filter) []string {
	its := make([]*item, 0, len(x.items))
	for _, it := range x.items {
		if f.Held != nil && it.held != *f.Held {
			continue
		}
		its = append(its, it)
	}
	slices.SortFunc(its, func(a, b *item) int {
		if c := a.received.Compare(b.received); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	if f.Limit > 0 && len(its) > f.Limit {
		its = its[:f.Limit]
	}
	ids := make([]string, len(its))
	for i, it := range its {
		ids[i] = it.id
	}
	return ids
}

func (x *index) stats() Stats {
	s := Stats{Messages: len(x.items), Bytes: x.bytes}
	for _, it := range x.items {
		if s.Oldest.IsZero() || it.received.Before(s.Oldest) {
			s.Oldest = it.received
		}
	}
	return s
}

// dueHeap is a min-heap of items by next (then id, for a stable order) that
// maintains item.pos.
type dueHeap []*item

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if c := h[i].next.Compare(h[j].next); c != 0 {
		return c < 0
	}
	return h[i].id < h[j].id
}
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos = i
	h[j].pos = j
}
func (h *dueHeap) Push(v any) {
	it := v.(*item)
	it.pos = len(*h)
	*h = append(*h, it)
}
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.pos = -1
	return it
}

// posHeap is a scratch min-heap of positions in a dueHeap, used by due to
// walk the index heap without modifying it.
type posHeap struct {
	h dueHeap
	p []int
}

func (f *posHeap) Len() int           { return len(f.p) }
func (f *posHeap) Less(i, j int) bool { return f.h.Less(f.p[i], f.p[j]) }
func (f *posHeap) Swap(i, j int)      { f.p[i], f.p[j] = f.p[j], f.p[i] }
func (f *posHeap) Push(v any)         { f.p = append(f.p, v.(int)) }
func (f *posHeap) Pop() any {
	v := f.p[len(f.p)-1]
	f.p = f.p[:len(f.p)-1]
	return v
}
