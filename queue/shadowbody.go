package queue

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// A shadow's body (docs/shadow.md). A hand-off used to copy the message's
// body into the shadow's value, so every hop wrote each body twice, once
// at Enqueue and once in the shadow, in the commits that hold up the
// sender's reply. Now the shadow keeps the message's own b/<id>: the
// hand-off that ends the message leaves b/<id> in place, and k/<id>
// counts the shadows that keep it. The body goes with the last of them
// (released, expired or resubmitted) unless the message is queued again.
// Shadows written before (Shadow.BodyKept false) still carry their body.
//
//	k/<message-id>   uvarint: how many shadows keep b/<message-id>
//
// Every count is read and written in the committer's transaction, so ops
// of one batch see each other's counts.

const prefixBodyRefs = "k/"

func bodyRefsKey(id string) []byte { return []byte(prefixBodyRefs + id) }

// bodyRefs is the number of shadows that keep id's body, as txn sees it.
func bodyRefs(txn *badger.Txn, id string) (uint64, error) {
	item, err := txn.Get(bodyRefsKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	err = item.Value(func(v []byte) error {
		var k int
		if n, k = binary.Uvarint(v); k <= 0 {
			return fmt.Errorf("bad body count %x", v)
		}
		return nil
	})
	return n, err
}

func bodyRefsEntry(id string, n uint64) *badger.Entry {
	return badger.NewEntry(bodyRefsKey(id), binary.AppendUvarint(nil, n))
}

// bodySize is the length of the queued message id's body: from the cache
// of recent bodies when it is there (bodies never change once stored, and
// the cache drops one with its message), else from txn without copying
// the value. A missing body is an error, as when shadows copied it.
func (q *Queue) bodySize(txn *badger.Txn, id string) (int64, error) {
	if b, ok := q.bodies.get(id); ok {
		return int64(len(b)), nil
	}
	item, err := txn.Get(bodyKey(id))
	if err != nil {
		return 0, fmt.Errorf("body %s: %w", id, err)
	}
	var n int64
	err = item.Value(func(v []byte) error { n = int64(len(v)); return nil })
	return n, err
}

// bodyKept reports whether id's body must stay when its message leaves the
// queue: a shadow keeps it, committed or among extra (the writes of the
// same op, not in txn yet).
func bodyKept(txn *badger.Txn, id string, extra []*badger.Entry) (bool, error) {
	k := string(bodyRefsKey(id))
	for _, e := range extra {
		if string(e.Key) == k {
			return true, nil
		}
	}
	n, err := bodyRefs(txn, id)
	return n > 0, err
}

// dropRefs returns the write that lowers id's count of keeping shadows by
// d: the lower count (set), or, when no shadow keeps the body any more,
// the count's delete (del). Whether the body goes too is the caller's.
func dropRefs(txn *badger.Txn, id string, d uint64) (set *badger.Entry, del []byte, err error) {
	n, err := bodyRefs(txn, id)
	if err != nil {
		return nil, nil, err
	}
	if n > d {
		return bodyRefsEntry(id, n-d), nil, nil
	}
	return nil, bodyRefsKey(id), nil
}

// unkeep returns the writes that drop dec[id] shadows' hold on each id's
// body: the count goes down, and with the last of them the body goes too
// unless the message is queued.
func unkeep(txn *badger.Txn, dec map[string]uint64) (sets []*badger.Entry, dels [][]byte, err error) {
	for id, d := range dec {
		set, del, err := dropRefs(txn, id, d)
		if err != nil {
			return nil, nil, err
		}
		if set != nil {
			sets = append(sets, set)
			continue
		}
		dels = append(dels, del)
		if _, err := txn.Get(msgKey(id)); errors.Is(err, badger.ErrKeyNotFound) {
			dels = append(dels, bodyKey(id))
		} else if err != nil {
			return nil, nil, err
		}
	}
	return sets, dels, nil
}

// deleteShadows returns the writes that delete the shadows of ids that txn
// holds (with the bodies only they kept) and which of ids it holds.
func deleteShadows(txn *badger.Txn, ids []string) (sets []*badger.Entry, dels [][]byte, found []string, err error) {
	seen := make(map[string]bool, len(ids))
	dec := map[string]uint64{}
	for _, id := range ids {
		if seen[id] {
			continue // the deletes reach txn only after the op has run
		}
		seen[id] = true
		k := shadowKey(id)
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, nil, err
		}
		var s *Shadow
		if err := item.Value(func(v []byte) error {
			s, _, err = decodeShadowHeader(v)
			return err
		}); err != nil {
			return nil, nil, nil, fmt.Errorf("decode %s: %w", id, err)
		}
		if s.BodyKept {
			dec[s.MessageID]++
		}
		found = append(found, id)
		dels = append(dels, k)
	}
	bsets, bdels, err := unkeep(txn, dec)
	if err != nil {
		return nil, nil, nil, err
	}
	return bsets, append(dels, bdels...), found, nil
}

// inlineKeptBody is for an Enqueue of id while shadows keep the body of an
// earlier message of that ID (a route change brought the copy back after
// it was handed on whole): the new message's body replaces b/<id>, so the
// shadows that kept the old one get it in their own value first, as
// shadows did before bodies were kept. Rare: it scans the shadows.
func inlineKeptBody(txn *badger.Txn, id string) ([]*badger.Entry, [][]byte, error) {
	n, err := bodyRefs(txn, id)
	if err != nil || n == 0 {
		return nil, nil, err
	}
	item, err := txn.Get(bodyKey(id))
	if err != nil {
		return nil, nil, fmt.Errorf("kept body %s: %w", id, err)
	}
	body, err := item.ValueCopy(nil)
	if err != nil {
		return nil, nil, err
	}
	var sets []*badger.Entry
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte(prefixShadow)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		it := it.Item()
		var s *Shadow
		if err := it.Value(func(v []byte) error {
			s, _, err = decodeShadowHeader(v)
			return err
		}); err != nil {
			return nil, nil, fmt.Errorf("decode %s: %w", it.Key(), err)
		}
		if !s.BodyKept || s.MessageID != id {
			continue
		}
		s.BodyKept = false
		v, err := encodeShadow(s, body)
		if err != nil {
			return nil, nil, err
		}
		sets = append(sets, badger.NewEntry(it.KeyCopy(nil), v))
	}
	return sets, [][]byte{bodyRefsKey(id)}, nil
}
