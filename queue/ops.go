package queue

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// change is a read-modify-write of one message record: it edits m in place
// and says whether the message is finished (to be deleted) and whether the
// delivery loop should be woken. It may run more than once on fresh copies.
type change func(m *Message) (finished, notify bool, err error)

// mutate applies fn to the stored message id through the committer (synced,
// group-committed) and returns the message as written.
func (q *Queue) mutate(id string, fn change) (*Message, error) {
	return q.mutateOp(id, false, fn, nil)
}

// mutateDeferrable is mutate for the delivery loop's own bookkeeping
// (Attempt, Record, Expire, MarkDelayNotified): the change is as durable
// when it returns, but may wait briefly to share the commit of the next
// Enqueue (see op.deferrable).
func (q *Queue) mutateDeferrable(id string, fn change) (*Message, error) {
	return q.mutateOp(id, true, fn, nil)
}

func (q *Queue) mutateOp(id string, deferrable bool, fn change, side sideFn) (*Message, error) {
	if !deferrable {
		// Only ops that somebody waits for are lingered for (linger):
		// the delivery loop's own never hold up an SMTP client's reply.
		q.preparing.Add(1)
	}
	var out *Message
	o := &op{
		deferrable: deferrable,
		run: func(txn *badger.Txn) (*mutation, error) {
			m, err := getMessage(txn, id)
			if err != nil {
				return nil, err
			}
			var extra []*badger.Entry
			var extraApply func()
			if side != nil {
				if extra, extraApply, err = side(txn, m); err != nil {
					return nil, err
				}
			}
			finished, notify, err := fn(m)
			if err != nil {
				return nil, err
			}
			withExtra := func(mu *mutation) *mutation {
				mu.sets = append(mu.sets, extra...)
				if extraApply != nil {
					apply := mu.apply
					mu.apply = func() { apply(); extraApply() }
				}
				return mu
			}
			m.updateNext()
			out = m
			if finished || !m.pending() {
				dels := [][]byte{msgKey(id)}
				// A shadow may keep the body (shadowbody.go).
				kept, err := bodyKept(txn, id, extra)
				if err != nil {
					return nil, err
				}
				if !kept {
					dels = append(dels, bodyKey(id))
				}
				if m.allHandedOn() {
					// Not delivered here, only passed on: the dedup
					// marker goes in the same commit, so the copy is
					// accepted again if a route change brings it back
					// (even across a crash), while a true duplicate is
					// still recognised where it was finally delivered.
					dels = append(dels, dedupKey(id))
					// A previous hop whose hand-off to us is in doubt
					// still learns that we took the copy (Holds).
					extra = append(extra, q.relayedEntry(id))
				}
				return withExtra(&mutation{
					dels: dels,
					apply: func() {
						q.idx.remove(id)
						q.bodies.drop(id)
					},
				}), nil
			}
			rec, err := encodeMessage(m)
			if err != nil {
				return nil, err
			}
			return withExtra(&mutation{
				sets:   []*badger.Entry{badger.NewEntry(msgKey(id), rec)},
				apply:  func() { q.idx.put(m) },
				notify: notify,
			}), nil
		},
		done: make(chan error, 1),
	}
	if err := q.submit(context.Background(), o); err != nil {
		return nil, err
	}
	return out, nil
}

// selected returns a predicate for the recipients named in addrs; an empty
// list selects every recipient.
func selected(addrs []string) func(string) bool {
	if len(addrs) == 0 {
		return func(string) bool { return true }
	}
	return func(a string) bool { return slices.Contains(addrs, a) }
}

// Attempt persists (synced) the backoff before an attempt: for each Pending
// recipient named in rcpts (all Pending ones when rcpts is empty) Attempts
// is incremented, LastAttempt set to now and NextAttempt to next. A crash
// during the attempt then retries at next, not at once.
func (q *Queue) Attempt(id string, rcpts []string, next time.Time) error {
	return q.AttemptVia(id, rcpts, next, nil)
}

// AttemptVia is Attempt for a hop to another mesh node that may take the
// copy: in the same synced commit, each recipient's Doubt becomes hop
// (Since is now when zero). The hop is in doubt from before its first byte
// until its outcome is recorded, so a sender killed anywhere in between
// (after the final dot, or after the reply but before Record) finds the
// node that may hold the copy after its restart, and asks it before the
// copy goes anywhere else (docs/indoubt.md). Record clears it: a Delivered
// or PermFail result always, a TempFail with ClearDoubt, a TempFail with a
// Doubt for the same hop keeps its Since.
func (q *Queue) AttemptVia(id string, rcpts []string, next time.Time, hop *Doubt) error {
	now := q.now()
	sel := selected(rcpts)
	_, err := q.mutateDeferrable(id, func(m *Message) (bool, bool, error) {
		for i := range m.Recipients {
			r := &m.Recipients[i]
			if r.State != Pending || !sel(r.Addr) {
				continue
			}
			r.Attempts++
			r.LastAttempt = now
			r.NextAttempt = next
			if hop != nil {
				r.Doubt = hopAt(hop, now)
			}
		}
		return false, false, nil
	})
	if err != nil {
		return fmt.Errorf("queue: attempt %s: %w", id, err)
	}
	return nil
}

// Redirect replaces the hop in doubt of the Pending recipients named in
// rcpts, before an attempt that AttemptVia began goes on to the next host
// (the one before it refused or could not be reached, so it holds nothing).
// The attempt count and backoff stay as AttemptVia wrote them; a nil hop
// clears the doubt (nobody could be asked about the next host).
func (q *Queue) Redirect(id string, rcpts []string, hop *Doubt) error {
	now := q.now()
	sel := selected(rcpts)
	_, err := q.mutateDeferrable(id, func(m *Message) (bool, bool, error) {
		for i := range m.Recipients {
			if r := &m.Recipients[i]; r.State == Pending && sel(r.Addr) {
				r.Doubt = nil
				if hop != nil {
					r.Doubt = hopAt(hop, now)
				}
			}
		}
		return false, false, nil
	})
	if err != nil {
		return fmt.Errorf("queue: redirect %s: %w", id, err)
	}
	return nil
}

func hopAt(hop *Doubt, now time.Time) *Doubt {
	d := *hop
	if d.Since.IsZero() {
		d.Since = now
	}
	return &d
}

// Record applies per-recipient results (synced). Results for recipients
// that are not Pending (or unknown) are ignored, so a repeated Record is
// harmless. When no Pending recipient remains the message and its body are
// deleted.
func (q *Queue) Record(id string, results []Result) error {
	_, err := q.RecordMessage(id, results)
	return err
}

// RecordMessage is Record that also returns the message as it stands after
// the results, with every recipient's final state: what a DSN needs once the
// message is gone from the queue.
func (q *Queue) RecordMessage(id string, results []Result) (*Message, error) {
	for _, r := range results {
		if r.Outcome != Delivered && r.Outcome != TempFail && r.Outcome != PermFail {
			return nil, fmt.Errorf("queue: record %s: %w: outcome %d for %s", id, ErrInvalid, r.Outcome, r.Addr)
		}
	}
	m, err := q.mutateDeferrable(id, applyResults(results))
	if err != nil {
		return nil, fmt.Errorf("queue: record %s: %w", id, err)
	}
	return m, nil
}

// Expire marks the Pending recipients named in rcpts (all when empty) as
// Expired with reason as LastError, deleting the message when none remain
// Pending, and returns the message as it stands after the change.
func (q *Queue) Expire(id string, rcpts []string, reason string) (*Message, error) {
	sel := selected(rcpts)
	m, err := q.mutateDeferrable(id, func(m *Message) (bool, bool, error) {
		for i := range m.Recipients {
			r := &m.Recipients[i]
			if r.State == Pending && sel(r.Addr) {
				r.State = Expired
				r.LastError = reason
			}
		}
		return false, false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: expire %s: %w", id, err)
	}
	return m, nil
}

// MarkDelayNotified records that a delay DSN was sent for the message.
func (q *Queue) MarkDelayNotified(id string) error {
	_, err := q.mutateDeferrable(id, func(m *Message) (bool, bool, error) {
		m.DelayNotified = true
		return false, false, nil
	})
	if err != nil {
		return fmt.Errorf("queue: mark delay notified %s: %w", id, err)
	}
	return nil
}

// Hold keeps the message out of Due until Release.
func (q *Queue) Hold(id string) error {
	_, err := q.mutate(id, func(m *Message) (bool, bool, error) {
		m.Held = true
		return false, false, nil
	})
	if err != nil {
		return fmt.Errorf("queue: hold %s: %w", id, err)
	}
	return nil
}

// Release undoes Hold and signals Notify.
func (q *Queue) Release(id string) error {
	_, err := q.mutate(id, func(m *Message) (bool, bool, error) {
		m.Held = false
		return false, true, nil
	})
	if err != nil {
		return fmt.Errorf("queue: release %s: %w", id, err)
	}
	return nil
}

// Retry makes every Pending recipient due now and signals Notify. It does
// not release a held message.
func (q *Queue) Retry(id string) error {
	now := q.now()
	_, err := q.mutate(id, func(m *Message) (bool, bool, error) {
		for i := range m.Recipients {
			if m.Recipients[i].State == Pending {
				m.Recipients[i].NextAttempt = now
			}
		}
		return false, true, nil
	})
	if err != nil {
		return fmt.Errorf("queue: retry %s: %w", id, err)
	}
	return nil
}

// Delete removes the message and its body. Its ID stays remembered for the
// dedup window.
func (q *Queue) Delete(id string) error {
	_, err := q.mutate(id, func(m *Message) (bool, bool, error) {
		return true, false, nil
	})
	if err != nil {
		return fmt.Errorf("queue: delete %s: %w", id, err)
	}
	return nil
}

// applyResults is the change of RecordMessage and RecordHandOff.
func applyResults(results []Result) change {
	return func(m *Message) (bool, bool, error) {
		for _, res := range results {
			for i := range m.Recipients {
				r := &m.Recipients[i]
				if r.State != Pending || r.Addr != res.Addr {
					continue
				}
				r.LastReply = res.Reply.String()
				switch res.Outcome {
				case Delivered:
					r.State = Delivered
					r.HandedOn = res.HandedOn
					r.Doubt = nil
				case TempFail:
					r.LastError = res.Reply.String()
					switch {
					case res.Doubt != nil && r.Doubt != nil && r.Doubt.CopyID == res.Doubt.CopyID && r.Doubt.Addr == res.Doubt.Addr:
						// The same hop still in doubt: it stays so since the first time.
					case res.Doubt != nil:
						d := *res.Doubt
						r.Doubt = &d
					case res.ClearDoubt:
						r.Doubt = nil
					}
				case PermFail:
					r.State = Failed
					r.LastError = res.Reply.String()
					r.Doubt = nil
				}
			}
		}
		return false, false, nil
	}
}
