package queue

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// prefixRelayed marks a message this node took and handed on whole to
// other mesh nodes: its dedup marker is dropped then (a route change may
// bring the copy back), but Holds must still answer Done for it.
const prefixRelayed = "r/"

func relayedKey(id string) []byte { return []byte(prefixRelayed + id) }

// relayedEntry is the relayed marker of id, kept as long as a dedup marker.
func (q *Queue) relayedEntry(id string) *badger.Entry {
	v := q.now().Add(q.opts.DedupWindow).UTC().AppendFormat(nil, time.RFC3339Nano)
	e := badger.NewEntry(relayedKey(id), v)
	e.ExpiresAt = uint64(time.Now().Add(q.opts.DedupWindow).Unix())
	return e
}

// Holding is what the queue durably knows of a message ID, for a sender
// whose hop to this node is in doubt (Recipient.Doubt).
type Holding int

const (
	// Unknown: neither queued nor remembered; the copy never committed here.
	Unknown Holding = iota
	// Queued: the message is in the queue.
	Queued
	// Done: the message left the queue (delivered, failed, or handed on
	// while other recipients were delivered here)
	// and its dedup marker still remembers it: a resend would be dropped.
	Done
	// Relayed: the message was handed on whole to other mesh nodes and
	// its relayed marker still remembers it (it is Done for a sender in
	// doubt; the node that took it answers for the copy now).
	Relayed
	// QueuedSuspect: queued, and the node asks its routing group before it
	// delivers the copy (a twin may exist, docs/shadow.md). Queue.Holds
	// never answers it; the node does, from the message.
	QueuedSuspect
)

func (h Holding) String() string {
	switch h {
	case Unknown:
		return "unknown"
	case Queued:
		return "queued"
	case Done:
		return "done"
	case QueuedSuspect:
		return "queued-suspect"
	case Relayed:
		return "relayed"
	}
	return fmt.Sprintf("Holding(%d)", int(h))
}

// Holds reports what the queue knows of id from its committed state (the
// message record, or the dedup marker Enqueue wrote in the same synced
// transaction, or the relayed marker that replaces it when the message
// was handed on whole), never from anything written after the commit: a node that
// crashed right after its commit answers the same after restart.
//
// While an Enqueue of id is still under way (the sender asked between the
// final dot and the receiver's commit) it returns ErrInFlight rather than
// Unknown, which would have the copy sent elsewhere while it may still
// commit here.
func (q *Queue) Holds(id string) (Holding, error) {
	q.mu.Lock()
	busy := q.enqueuing[id] > 0
	q.mu.Unlock()
	h := Unknown
	err := q.view(func(txn *badger.Txn) error {
		if _, err := txn.Get(msgKey(id)); err == nil {
			h = Queued
			return nil
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		done := Done
		item, err := txn.Get(dedupKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			done = Relayed
			item, err = txn.Get(relayedKey(id))
		}
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			ts, _, _ := strings.Cut(string(v), " ")
			if exp, perr := time.Parse(time.RFC3339Nano, ts); perr == nil && !q.now().Before(exp) {
				return nil // past the window: a resend would be taken again
			}
			h = done
			return nil
		})
	})
	if err != nil {
		return Unknown, fmt.Errorf("queue: holds %s: %w", id, err)
	}
	if h == Unknown && busy {
		return Unknown, fmt.Errorf("queue: holds %s: %w", id, ErrInFlight)
	}
	return h, nil
}
