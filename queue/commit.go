package queue

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// op is one write waiting for the committer.
type op struct {
	// run reads what it needs through txn (which sees the writes of earlier
	// ops in the same batch) and returns the writes to make. It must not
	// write to txn itself and may be run again if the batch is split.
	run func(txn *badger.Txn) (*mutation, error)
	// finish, if set, runs under q.mu once the op is settled either way.
	finish func()
	done   chan error // capacity 1
	// deferrable ops (the delivery loop's Attempt and Record) are not
	// waited for by an SMTP client. While Enqueues are arriving, a batch
	// that starts with a deferrable op waits up to maxDefer for the next
	// one, so that the two share one synced commit: every commit costs
	// a flush whose CPU time is taken from accepting mail.
	deferrable bool
}

// mutation is what an op writes, and what changes in memory after the
// commit succeeds.
type mutation struct {
	sets   []*badger.Entry
	dels   [][]byte
	apply  func() // under q.mu, after a successful commit
	notify bool   // signal Notify after the commit
}

func (m *mutation) writeTo(txn *badger.Txn) error {
	for _, e := range m.sets {
		// SetEntry keeps e; give badger its own copy so a split batch can
		// replay the same entries into a fresh transaction.
		c := *e
		if err := txn.SetEntry(&c); err != nil {
			return err
		}
	}
	for _, k := range m.dels {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// submit hands o to the committer and waits for its result. The caller
// of an op that is not deferrable has counted itself in q.preparing;
// submit uncounts it.
func (q *Queue) submit(ctx context.Context, o *op) error {
	if !o.deferrable {
		q.preparing.Add(-1)
		now := int64(time.Since(q.epoch))
		if prev := q.lastUrgent.Swap(now); prev > 0 {
			// Approximate under concurrent submits; it only sizes a wait.
			q.urgentGap.Store((3*q.urgentGap.Load() + now - prev) / 4)
		}
	}
	select {
	case q.ops <- o:
	case <-q.stop:
		q.settle(o, ErrClosed)
		return ErrClosed
	case <-ctx.Done():
		q.settle(o, ctx.Err())
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-q.stopped:
		// The committer settles everything it took before exiting; an op
		// still in the channel was never run.
		select {
		case err := <-o.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// settle completes an op that never reached a transaction.
func (q *Queue) settle(o *op, err error) {
	if o.finish != nil {
		q.mu.Lock()
		o.finish()
		q.mu.Unlock()
	}
	o.done <- err
}

// committer is the only goroutine that writes to badger. It takes every op
// that is waiting, commits them in one synced transaction and releases the
// waiters: while one batch is being fsynced the next one accumulates, so
// the number of fsyncs follows the disk, not the number of callers.
func (q *Queue) committer() {
	defer q.wg.Done()
	defer close(q.stopped)
	batch := make([]*op, 0, q.opts.MaxBatch)
	for {
		select {
		case o := <-q.ops:
			batch = append(batch, o)
		case <-q.stop:
			q.drain()
			return
		}
		if batch[0].deferrable {
			batch = q.awaitUrgent(batch)
		}
	fill:
		for len(batch) < q.opts.MaxBatch {
			select {
			case o := <-q.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		batch = q.linger(batch)
		q.commitAll(batch)
		clear(batch)
		batch = batch[:0]
		// Let the callers just released run: one that comes straight back
		// with its next op is then counted in preparing and lingered for.
		runtime.Gosched()
	}
}

// linger waits briefly for callers that are still preparing an op (inside
// Enqueue or a state change, encoding, not yet submitted) so that they join
// this batch instead of waiting a whole commit for the next one. Without it
// callers fall into two groups that alternate, and each waits for two
// commits. The wait ends when no caller is preparing or after half the
// recent commit time, so a lone caller never waits.
func (q *Queue) linger(batch []*op) []*op {
	if len(batch) >= q.opts.MaxBatch || q.preparing.Load() <= 0 {
		return batch
	}
	d := time.Duration(q.commitNanos.Load()) / 2
	d = max(minLinger, min(d, maxLinger))
	timer := time.NewTimer(d)
	defer timer.Stop()
	for len(batch) < q.opts.MaxBatch && q.preparing.Load() > 0 {
		select {
		case o := <-q.ops:
			batch = append(batch, o)
		case <-timer.C:
			return batch
		case <-q.stop:
			return batch
		}
	}
	return batch
}

// awaitUrgent holds a batch that starts with a deferrable op until an op
// that is not deferrable joins it, when such ops are arriving: it waits
// until about two average gaps after the last one, at most maxDefer. With
// no recent Enqueue it returns at once, so the delivery loop alone is not
// slowed down.
func (q *Queue) awaitUrgent(batch []*op) []*op {
	last := q.lastUrgent.Load()
	gap := time.Duration(q.urgentGap.Load())
	if last == 0 || gap > maxDefer {
		return batch
	}
	since := time.Since(q.epoch) - time.Duration(last)
	d := min(2*gap-since, maxDefer)
	if since > urgentWindow || d <= 0 {
		return batch
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for len(batch) < q.opts.MaxBatch {
		select {
		case o := <-q.ops:
			batch = append(batch, o)
			if !o.deferrable {
				return batch
			}
		case <-timer.C:
			return batch
		case <-q.stop:
			return batch
		}
	}
	return batch
}

// Bounds of awaitUrgent: the longest a deferrable op waits, and how recent
// the last other op must be for it to wait at all.
const (
	maxDefer     = 3 * time.Millisecond
	urgentWindow = 10 * time.Millisecond
)

// Bounds of the linger wait.
const (
	minLinger = 20 * time.Microsecond
	maxLinger = 2 * time.Millisecond
)

// drain settles the ops that were queued when Close was called.
func (q *Queue) drain() {
	for {
		select {
		case o := <-q.ops:
			q.settle(o, ErrClosed)
		default:
			return
		}
	}
}

func (q *Queue) commitAll(ops []*op) {
	if q.halted.Load() {
		for _, o := range ops {
			q.settle(o, ErrClosed)
		}
		return
	}
	for len(ops) > 0 {
		n := q.commitSome(ops)
		ops = ops[n:]
	}
}

// commitSome commits a prefix of ops in one transaction and returns its
// length (at least 1). The prefix ends early only when the transaction
// would exceed badger's batch limits; the rest go in the next transaction.
func (q *Queue) commitSome(ops []*op) int {
	txn := q.db.NewTransaction(true)
	defer func() { txn.Discard() }()

	results := make([]settled, 0, len(ops))
	var written []*mutation

	// rebuild replaces txn with one holding only the mutations kept so far,
	// dropping the partial writes of a failed op.
	rebuild := func() error {
		txn.Discard()
		txn = q.db.NewTransaction(true)
		for _, m := range written {
			if err := m.writeTo(txn); err != nil {
				return err
			}
		}
		return nil
	}

	n := 0
	for ; n < len(ops); n++ {
		o := ops[n]
		m, err := o.run(txn)
		if err != nil {
			results = append(results, settled{o: o, err: err})
			continue
		}
		werr := m.writeTo(txn)
		if werr == nil {
			written = append(written, m)
			results = append(results, settled{o: o, m: m})
			continue
		}
		if rerr := rebuild(); rerr != nil {
			// Cannot happen unless badger changed its limits under us; fail
			// the whole batch rather than commit something unexpected.
			q.failAll(results, ops[n:], rerr)
			return len(ops)
		}
		if errors.Is(werr, badger.ErrTxnTooBig) && len(written) > 0 {
			break // commit what we have; ops[n] starts the next transaction
		}
		results = append(results, settled{o: o, err: werr})
	}

	var cerr error
	if len(written) > 0 {
		start := time.Now()
		cerr = txn.Commit()
		// Moving average of commit time, for linger.
		took := time.Since(start).Nanoseconds()
		q.commitNanos.Store((3*q.commitNanos.Load() + took) / 4)
		q.commits.Add(1)
		q.committedOps.Add(uint64(len(written)))
		q.committedBytes.Add(writtenBytes(written))
		if cerr != nil {
			q.log.Error("queue: commit failed", "ops", len(written), "err", cerr)
		}
	}

	notify := false
	q.mu.Lock()
	for _, r := range results {
		if r.m != nil && cerr == nil {
			if r.m.apply != nil {
				r.m.apply()
			}
			notify = notify || r.m.notify
		}
		if r.o.finish != nil {
			r.o.finish()
		}
	}
	q.mu.Unlock()
	for _, r := range results {
		err := r.err
		if r.m != nil && cerr != nil {
			err = fmt.Errorf("commit: %w", cerr)
		}
		r.o.done <- err
	}
	if notify {
		q.signal()
	}
	if n == 0 {
		n = 1 // unreachable: the first op never breaks out early
	}
	return n
}

// settled is an op with its outcome before the commit: m is set when its
// writes are in the transaction, err when it failed on its own.
type settled struct {
	o   *op
	m   *mutation
	err error
}

// failAll settles every op of a batch with err, nothing applied.
func (q *Queue) failAll(results []settled, rest []*op, err error) {
	err = fmt.Errorf("commit: %w", err)
	q.mu.Lock()
	for _, r := range results {
		if r.o.finish != nil {
			r.o.finish()
		}
	}
	for _, o := range rest {
		if o.finish != nil {
			o.finish()
		}
	}
	q.mu.Unlock()
	for _, r := range results {
		if r.err != nil {
			r.o.done <- r.err
		} else {
			r.o.done <- err
		}
	}
	for _, o := range rest {
		o.done <- err
	}
}

// writtenBytes is what the mutations hand badger: every key and value set,
// every key deleted.
func writtenBytes(ms []*mutation) uint64 {
	var n int
	for _, m := range ms {
		for _, e := range m.sets {
			n += len(e.Key) + len(e.Value)
		}
		for _, k := range m.dels {
			n += len(k)
		}
	}
	return uint64(n)
}

// CommittedBytes returns the bytes the committed transactions carried (keys
// and values set, keys deleted): what a change of record layout costs the
// disk, independent of how the commits were grouped.
func (q *Queue) CommittedBytes() uint64 { return q.committedBytes.Load() }

// CommitStats returns how many transactions the committer has committed and
// how many operations they carried; ops/txns is the mean group-commit size.
func (q *Queue) CommitStats() (txns, ops uint64) {
	return q.commits.Load(), q.committedOps.Load()
}
