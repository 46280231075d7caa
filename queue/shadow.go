package queue

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Shadow copies (docs/shadow.md). A node that hands a copy of a message to
// another mesh node keeps a shadow of it, s/<copy-id>, until the receiver
// reports the copy delivered or handed on (ReleaseShadow) or is declared
// lost (ResubmitShadow). The shadow is written by the same transaction that
// records the hand-off (RecordHandOff), so it costs no fsync of its own.

const prefixShadow = "s/"

func shadowKey(copyID string) []byte { return []byte(prefixShadow + copyID) }

// ErrNoShadow means no shadow has that copy ID.
var ErrNoShadow = errors.New("shadow not found")

// HandOff describes the copy handed to another mesh node: RecordHandOff
// keeps a shadow of it.
type HandOff struct {
	CopyID      string    // the ID the receiver got the copy under
	Peer        string    // the receiving node's name
	Incarnation string    // the receiver's incarnation at hand-off ("" unknown)
	Expires     time.Time // the message's end of life: the shadow goes then
}

// Shadow is one shadow copy without its body.
type Shadow struct {
	HandOff
	MessageID string // the ID of the message here, resubmitted under it
	Envelope  Envelope
	HandedAt  time.Time
	Size      int64 // body bytes
	// BodyKept: the body is the message's own b/<MessageID>, kept for
	// the shadow (shadowbody.go); false: it follows the shadow's header
	// in its value (shadows written before bodies were kept).
	BodyKept bool `json:",omitempty"`
}

// shadowEntry is the in-memory index of one shadow.
type shadowEntry struct {
	peer    string
	bytes   int64
	expires time.Time
}

// sideFn adds writes to a mutateOp transaction. It sees the message
// before the change and returns extra entries and what to apply under q.mu
// after the commit.
type sideFn func(txn *badger.Txn, before *Message) ([]*badger.Entry, func(), error)

func (q *Queue) submitBackground(o *op) error { return q.submit(context.Background(), o) }

// ShadowStats counts the shadows and their stored bytes, and the hand-offs
// that were recorded without a shadow because of Options.MaxShadowBytes.
type ShadowStats struct {
	Count   int
	Bytes   int64
	Skipped uint64
}

// encodeShadow is a 4-byte length, the JSON of s, then the body. A shadow
// whose body is kept in place (s.BodyKept, no body here) sets the length
// word's top bit, shadowBodyKept: a build from before kept bodies reads
// that length as past the record's end and refuses to open the queue,
// naming the key, where it would otherwise take the empty rest of the
// value for the body and resubmit the message without one.
func encodeShadow(s *Shadow, body []byte) ([]byte, error) {
	if s.BodyKept && len(body) > 0 {
		return nil, errors.New("shadow keeps its body in place and carries one")
	}
	j, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	word := uint32(len(j))
	if s.BodyKept {
		word |= shadowBodyKept
	}
	out := make([]byte, 4, 4+len(j)+len(body))
	binary.BigEndian.PutUint32(out, word)
	return append(append(out, j...), body...), nil
}

// shadowBodyKept is the length word's flag of a shadow that keeps the
// message's own body (encodeShadow). JSON headers are far below 2 GiB.
const shadowBodyKept = 1 << 31

func decodeShadow(v []byte) (*Shadow, []byte, error) {
	s, n, err := decodeShadowHeader(v)
	if err != nil {
		return nil, nil, err
	}
	return s, slices.Clone(v[n:]), nil
}

// decodeShadowHeader decodes a shadow without its body (listing and
// rebuilding the index need no body) and returns where the body starts.
func decodeShadowHeader(v []byte) (*Shadow, int, error) {
	if len(v) < 4 {
		return nil, 0, errors.New("short shadow record")
	}
	word := binary.BigEndian.Uint32(v)
	kept, n := word&shadowBodyKept != 0, word&^shadowBodyKept
	if uint64(n) > uint64(len(v)-4) {
		return nil, 0, errors.New("shadow header past end")
	}
	s := &Shadow{}
	if err := json.Unmarshal(v[4:4+n], s); err != nil {
		return nil, 0, err
	}
	if s.BodyKept != kept || (kept && len(v) > 4+int(n)) {
		return nil, 0, errors.New("shadow record: body kept in place and in the value disagree")
	}
	return s, 4 + int(n), nil
}

// RecordHandOff is RecordMessage for a hop to another mesh node: in the same
// transaction it keeps a shadow of the recipients that were Delivered with
// HandedOn, under h.CopyID. No shadow is kept when h.CopyID is empty, when
// h.Expires has passed, or when the shadows would exceed
// Options.MaxShadowBytes (counted in ShadowStats.Skipped).
func (q *Queue) RecordHandOff(id string, results []Result, h HandOff) (*Message, error) {
	for _, r := range results {
		if r.Outcome != Delivered && r.Outcome != TempFail && r.Outcome != PermFail {
			return nil, fmt.Errorf("queue: record %s: %w: outcome %d for %s", id, ErrInvalid, r.Outcome, r.Addr)
		}
	}
	var side sideFn
	if h.CopyID != "" {
		side = q.shadowSide(id, results, h)
	}
	m, err := q.mutateOp(id, true, applyResults(results), side)
	if err != nil {
		return nil, fmt.Errorf("queue: record %s: %w", id, err)
	}
	return m, nil
}

// shadowSide builds the shadow write of RecordHandOff: it runs inside the
// committer, before the message (and maybe its body) is deleted.
func (q *Queue) shadowSide(id string, results []Result, h HandOff) sideFn {
	return func(txn *badger.Txn, before *Message) ([]*badger.Entry, func(), error) {
		now := q.now()
		if !h.Expires.IsZero() && !h.Expires.After(now) {
			return nil, nil, nil
		}
		env := before.Envelope
		env.Rcpts = nil
		for _, res := range results {
			if res.Outcome != Delivered || !res.HandedOn {
				continue
			}
			for i := range before.Recipients {
				if r := &before.Recipients[i]; r.State == Pending && r.Addr == res.Addr {
					env.Rcpts = append(env.Rcpts, r.Rcpt)
				}
			}
		}
		if len(env.Rcpts) == 0 {
			return nil, nil, nil
		}
		// The shadow keeps the message's body where it is (shadowbody.go):
		// its value is the header only.
		bodySize, err := q.bodySize(txn, id)
		if err != nil {
			return nil, nil, err
		}
		s := &Shadow{HandOff: h, MessageID: id, Envelope: env, HandedAt: now, Size: bodySize, BodyKept: true}
		v, err := encodeShadow(s, nil)
		if err != nil {
			return nil, nil, err
		}
		refs, err := bodyRefs(txn, id)
		if err != nil {
			return nil, nil, err
		}
		// Counted as before bodies were kept: the space the shadow holds.
		size := int64(len(v)) + bodySize
		// The bound is checked against the committed shadows, so one
		// batch may pass it by what the batch adds.
		q.mu.Lock()
		over := q.opts.MaxShadowBytes > 0 && q.shadowBytes+size > q.opts.MaxShadowBytes
		q.mu.Unlock()
		if over {
			q.shadowSkipped.Add(1)
			return nil, nil, nil
		}
		apply := func() { // under q.mu
			q.putShadowLocked(h.CopyID, shadowEntry{peer: h.Peer, bytes: size, expires: h.Expires})
		}
		return []*badger.Entry{badger.NewEntry(shadowKey(h.CopyID), v), bodyRefsEntry(id, refs+1)}, apply, nil
	}
}

func (q *Queue) putShadowLocked(copyID string, e shadowEntry) {
	if old, ok := q.shadows[copyID]; ok {
		q.shadowBytes -= old.bytes
	}
	q.shadows[copyID] = e
	q.shadowBytes += e.bytes
}

func (q *Queue) dropShadowLocked(copyID string) {
	if old, ok := q.shadows[copyID]; ok {
		q.shadowBytes -= old.bytes
		delete(q.shadows, copyID)
	}
}

// ShadowStats returns the current count and size of the shadows.
func (q *Queue) ShadowStats() ShadowStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return ShadowStats{Count: len(q.shadows), Bytes: q.shadowBytes, Skipped: q.shadowSkipped.Load()}
}

// ShadowIDs returns the copy IDs of the shadows held for peer ("" = all),
// sorted.
func (q *Queue) ShadowIDs(peer string) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var ids []string
	for id, e := range q.shadows {
		if peer == "" || e.peer == peer {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Shadows returns the shadows held for peer ("" = all), without bodies,
// ordered by copy ID.
func (q *Queue) Shadows(peer string) ([]*Shadow, error) {
	ids := q.ShadowIDs(peer)
	out := make([]*Shadow, 0, len(ids))
	err := q.view(func(txn *badger.Txn) error {
		for _, id := range ids {
			item, err := txn.Get(shadowKey(id))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue // released meanwhile
			}
			if err != nil {
				return err
			}
			err = item.Value(func(v []byte) error {
				s, _, err := decodeShadowHeader(v)
				if err == nil {
					out = append(out, s)
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("decode %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: shadows: %w", err)
	}
	return out, nil
}

// ReleaseShadow deletes the shadow: the receiver reported the copy delivered
// or handed on. It shares the delivery loop's next commit.
func (q *Queue) ReleaseShadow(copyID string) error {
	n, err := q.releaseShadows([]string{copyID})
	if err != nil {
		return fmt.Errorf("queue: release shadow %s: %w", copyID, err)
	}
	if n == 0 {
		return fmt.Errorf("queue: release shadow %s: %w", copyID, ErrNoShadow)
	}
	return nil
}

// ReleaseShadows deletes the shadows of copyIDs in one operation, so that a
// peer's answer for a batch of copies costs one commit, not one per copy;
// it returns how many it found (the others were released or resubmitted
// before). Like ReleaseShadow it shares the delivery loop's next commit.
func (q *Queue) ReleaseShadows(copyIDs []string) (int, error) {
	n, err := q.releaseShadows(copyIDs)
	if err != nil {
		return 0, fmt.Errorf("queue: release %d shadows: %w", len(copyIDs), err)
	}
	return n, nil
}

func (q *Queue) releaseShadows(copyIDs []string) (int, error) {
	if len(copyIDs) == 0 {
		return 0, nil
	}
	var found []string
	o := &op{
		deferrable: true,
		run: func(txn *badger.Txn) (*mutation, error) {
			sets, dels, f, err := deleteShadows(txn, copyIDs)
			if err != nil {
				return nil, err
			}
			found = f // set again when a split batch runs the op again
			if len(f) == 0 {
				return nil, ErrNoShadow
			}
			return &mutation{
				sets: sets,
				dels: dels,
				apply: func() {
					for _, id := range f {
						q.dropShadowLocked(id)
					}
				},
			}, nil
		},
		done: make(chan error, 1),
	}
	err := q.submitBackground(o)
	if errors.Is(err, ErrNoShadow) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return len(found), nil
}

// ResubmitShadow turns the shadow back into queued recipients of its message,
// under the message's own ID, in one transaction: the receiver is lost. The
// recipients become Pending and due now, so the delivery loop routes them
// along the current routes and the next hop derives the same copy ID.
func (q *Queue) ResubmitShadow(copyID string) error {
	now := q.now()
	var m *Message
	o := &op{
		run: func(txn *badger.Txn) (*mutation, error) {
			item, err := txn.Get(shadowKey(copyID))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil, ErrNoShadow
			}
			if err != nil {
				return nil, err
			}
			var s *Shadow
			var body []byte
			if err := item.Value(func(v []byte) error {
				s, body, err = decodeShadow(v)
				return err
			}); err != nil {
				return nil, err
			}
			sets := []*badger.Entry{}
			var dels [][]byte
			if s.BodyKept {
				// The message's own body, kept for its shadows: it stays,
				// the message is queued again.
				if _, err := txn.Get(bodyKey(s.MessageID)); err != nil {
					return nil, fmt.Errorf("kept body %s: %w", s.MessageID, err)
				}
				set, del, err := dropRefs(txn, s.MessageID, 1)
				if err != nil {
					return nil, err
				}
				if set != nil {
					sets = append(sets, set)
				} else {
					dels = append(dels, del)
				}
			}
			cur, err := getMessage(txn, s.MessageID)
			switch {
			case errors.Is(err, ErrNotFound):
				cur = &Message{Envelope: s.Envelope, Size: s.Size}
				cur.Rcpts = nil
				if !s.BodyKept {
					sets = append(sets, badger.NewEntry(bodyKey(s.MessageID), body))
				}
			case err != nil:
				return nil, err
			}
			// A twin may exist (the lost node may have handed the copy on
			// before it was lost): every hop from here says so, and the
			// node of final delivery asks its group first.
			cur.Suspect = true
			for _, rc := range s.Envelope.Rcpts {
				i := slices.IndexFunc(cur.Recipients, func(r Recipient) bool { return r.Addr == rc.Addr })
				if i < 0 {
					cur.Rcpts = append(cur.Rcpts, rc)
					cur.Recipients = append(cur.Recipients, Recipient{Rcpt: rc})
					i = len(cur.Recipients) - 1
				}
				r := &cur.Recipients[i]
				r.State, r.HandedOn, r.NextAttempt = Pending, false, now
				r.LastReply = "resubmitted from shadow " + copyID + " (" + s.Peer + " lost)"
			}
			cur.updateNext()
			rec, err := encodeMessage(cur)
			if err != nil {
				return nil, err
			}
			m = cur
			sets = append(sets, badger.NewEntry(msgKey(s.MessageID), rec))
			return &mutation{
				sets: sets,
				dels: append(dels, shadowKey(copyID)),
				apply: func() {
					q.dropShadowLocked(copyID)
					q.idx.put(m)
				},
				notify: true,
			}, nil
		},
		done: make(chan error, 1),
	}
	q.preparing.Add(1)
	if err := q.submitBackground(o); err != nil {
		return fmt.Errorf("queue: resubmit shadow %s: %w", copyID, err)
	}
	return nil
}

// ExpireShadows deletes the shadows whose message lifetime has ended and
// returns how many it deleted. The GC loop calls it; tests may call it with
// their clock.
func (q *Queue) ExpireShadows(now time.Time) (int, error) {
	q.mu.Lock()
	var ids []string
	for id, e := range q.shadows {
		if !e.expires.IsZero() && !e.expires.After(now) {
			ids = append(ids, id)
		}
	}
	q.mu.Unlock()
	if len(ids) == 0 {
		return 0, nil
	}
	o := &op{
		deferrable: true,
		run: func(txn *badger.Txn) (*mutation, error) {
			sets, dels, found, err := deleteShadows(txn, ids)
			if err != nil {
				return nil, err
			}
			return &mutation{sets: sets, dels: dels, apply: func() {
				for _, id := range found {
					q.dropShadowLocked(id)
				}
			}}, nil
		},
		done: make(chan error, 1),
	}
	if err := q.submitBackground(o); err != nil {
		return 0, fmt.Errorf("queue: expire shadows: %w", err)
	}
	return len(ids), nil
}

// loadShadows rebuilds the shadow index on Open.
func (q *Queue) loadShadows(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: []byte(prefixShadow)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		err := item.Value(func(v []byte) error {
			s, _, err := decodeShadowHeader(v)
			if err != nil {
				return err
			}
			size := int64(len(v))
			if s.BodyKept {
				size += s.Size // as shadowSide counts it
			}
			q.putShadowLocked(s.CopyID, shadowEntry{peer: s.Peer, bytes: size, expires: s.Expires})
			return nil
		})
		if err != nil {
			return fmt.Errorf("queue: open: load %s: %w", item.Key(), err)
		}
	}
	return nil
}
