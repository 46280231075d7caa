package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/meshd/meshd/meshid"
)

// Options configures Open. Zero values take the documented defaults.
type Options struct {
	Dir      string // badger directory; created if missing
	InMemory bool   // no files at all; for unit tests only

	// MaxMessages and MaxBytes bound the queue: Enqueue returns ErrFull when
	// Messages >= MaxMessages or Bytes+len(body) > MaxBytes. Zero means
	// unbounded.
	MaxMessages int
	MaxBytes    int64

	// DedupWindow is how long accepted IDs are remembered (default 7*24h).
	DedupWindow time.Duration

	Now    func() time.Time // clock (default time.Now)
	Logger *slog.Logger     // default slog.Default()

	// GCInterval is the value-log GC period (default 5m).
	GCInterval time.Duration

	// MaxBatch caps how many operations share one transaction (default 1024).
	MaxBatch int

	// MaxBodyBytes is the largest body Enqueue must store (default and
	// minimum 64 MiB, at most 1 GiB): badger refuses a value larger than
	// one value-log file, so the files are sized to hold it.
	MaxBodyBytes int64

	// MaxShadowBytes bounds the space of shadow copies (docs/shadow.md);
	// a hand-off past it is recorded without a shadow. Zero means unbounded.
	MaxShadowBytes int64

	// tune, when set by tests and benchmarks, adjusts the badger options
	// after the defaults below are applied.
	tune func(badger.Options) badger.Options
}

// Defaults for Options.
const (
	DefaultDedupWindow = 7 * 24 * time.Hour
	DefaultGCInterval  = 5 * time.Minute
	DefaultMaxBatch    = 1024

	// gcDiscardRatio is the fraction of a value-log file that must be garbage
	// before GC rewrites it.
	gcDiscardRatio = 0.5
)

// Key prefixes. IDs cannot contain '/', so the prefixes never overlap.
const (
	prefixMsg   = "m/"
	prefixBody  = "b/"
	prefixDedup = "d/"
)

func msgKey(id string) []byte   { return []byte(prefixMsg + id) }
func bodyKey(id string) []byte  { return []byte(prefixBody + id) }
func dedupKey(id string) []byte { return []byte(prefixDedup + id) }

// Queue is an open queue. All methods are safe for concurrent use.
type Queue struct {
	opts Options
	db   *badger.DB
	log  *slog.Logger
	now  func() time.Time

	ops     chan *op      // to the committer
	stop    chan struct{} // closed by Close
	stopped chan struct{} // closed when the committer has exited
	notify  chan struct{}
	wg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	halted atomic.Bool // Halt: nothing is committed any more

	// dbMu keeps db.Close from racing with readers.
	dbMu   sync.RWMutex
	closed bool

	mu  sync.Mutex // guards idx and enqueuing
	idx index
	// enqueuing counts the Enqueues of each ID not settled yet: Holds
	// does not answer "unknown" for a copy whose commit may still land.
	enqueuing map[string]int

	// Shadow copies (shadow.go), guarded by mu.
	shadows       map[string]shadowEntry
	shadowBytes   int64
	shadowSkipped atomic.Uint64

	bodies *bodyCache // recently enqueued bodies (bodycache.go)

	commits, committedOps atomic.Uint64
	committedBytes        atomic.Uint64 // keys and values set, keys deleted
	commitNanos           atomic.Int64  // moving average of txn.Commit time
	preparing             atomic.Int64  // callers building an op, not yet submitted

	// Arrivals of ops that are not deferrable (Enqueue, admin changes),
	// for deferrable ops to wait for: nanoseconds since epoch (monotonic)
	// of the last one, and a moving average of the gap between them.
	epoch      time.Time
	lastUrgent atomic.Int64
	urgentGap  atomic.Int64
}

// Open opens (or creates) the queue in opts.Dir and rebuilds the in-memory
// index by scanning the stored messages.
func Open(opts Options) (*Queue, error) {
	if opts.Dir == "" && !opts.InMemory {
		return nil, errors.New("queue: open: Dir is required unless InMemory")
	}
	if opts.DedupWindow <= 0 {
		opts.DedupWindow = DefaultDedupWindow
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = DefaultGCInterval
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	db, err := badger.Open(badgerOptions(opts))
	if err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", opts.Dir, err)
	}
	q := &Queue{
		opts:    opts,
		db:      db,
		log:     opts.Logger,
		now:     opts.Now,
		ops:     make(chan *op, opts.MaxBatch),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		notify:  make(chan struct{}, 1),
		idx:     newIndex(),
		shadows: make(map[string]shadowEntry),
		bodies:  newBodyCache(bodyCacheBytes),
		epoch:   time.Now(),
	}
	if err := q.load(); err != nil {
		db.Close()
		return nil, err
	}
	q.wg.Add(2)
	go q.committer()
	go q.gcLoop()
	if q.idx.heapLen() > 0 {
		q.signal()
	}
	st := q.idx.stats()
	q.log.Info("queue: opened", "dir", opts.Dir, "messages", st.Messages, "bytes", st.Bytes)
	return q, nil
}

// badgerOptions sizes badger for a mail queue: mostly small bodies that live
// seconds to days, a working set far smaller than badger's defaults assume.
//
// Bodies up to 64 KiB are stored inline in the LSM tree, larger ones in the
// value log. Inline values cost one disk flush per commit (the memtable WAL);
// a value-log write adds a second one (BenchmarkEnqueue on an idle disk:
// 2,600 vs 1,100 msgs/s for one caller), and badger only logs, rather than
// returns, a failed value-log sync. Memtables of 16 MiB cap a transaction at
// 2.4 MiB, about 580 inline 4 KiB messages, and measured faster than 4 or
// 64 MiB. After 20,000 4 KiB enqueues and 19,000 deletes the process held
// 209 MB RSS and 163 MB on disk, against 401 MB and 2.2 GB with badger's
// defaults.
func badgerOptions(opts Options) badger.Options {
	dir := opts.Dir
	if opts.InMemory {
		dir = ""
	}
	bo := badger.DefaultOptions(dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(true).
		WithLogger(badgerLogger{opts.Logger}).
		WithMetricsEnabled(false).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(12).
		WithNumCompactors(2).
		WithBaseTableSize(2 << 20).
		WithValueThreshold(64 << 10).
		WithValueLogFileSize(valueLogFileSize(opts.MaxBodyBytes)).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithNumGoroutines(2)
	if opts.tune != nil {
		bo = opts.tune(bo)
	}
	return bo
}

// valueLogFileSize sizes badger's value-log files so that one holds a body
// of maxBody bytes with its key and entry header.
func valueLogFileSize(maxBody int64) int64 {
	const (
		minSize  = 64 << 20
		maxSize  = 1<<31 - 1 // badger's bound
		overhead = 1 << 20
	)
	return min(max(maxBody+overhead, minSize), maxSize)
}

// load rebuilds the index and counters from the stored records.
func (q *Queue) load() error {
	return q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: []byte(prefixMsg)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var m *Message
			err := item.Value(func(v []byte) error {
				var err error
				m, err = decodeMessage(v)
				return err
			})
			if err != nil {
				return fmt.Errorf("queue: open: load %s: %w", item.Key(), err)
			}
			q.idx.put(m)
		}
		return q.loadShadows(txn)
	})
}

// Close stops the committer and the GC goroutine, waits for them and closes
// the store. Operations still waiting for a commit get ErrClosed.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		close(q.stop)
		q.wg.Wait()
		q.dbMu.Lock()
		q.closed = true
		q.closeErr = q.db.Close()
		q.dbMu.Unlock()
		if q.closeErr != nil {
			q.closeErr = fmt.Errorf("queue: close: %w", q.closeErr)
		}
		txns, ops := q.CommitStats()
		q.log.Info("queue: closed", "commits", txns, "ops", ops)
	})
	return q.closeErr
}

// view runs fn in a read transaction unless the queue is closed.
func (q *Queue) view(fn func(txn *badger.Txn) error) error {
	q.dbMu.RLock()
	defer q.dbMu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	return q.db.View(fn)
}

// Notify returns a channel that receives a value (non-blocking, capacity 1)
// after Enqueue, Release and Retry, so a delivery loop can wake up early.
func (q *Queue) Notify() <-chan struct{} { return q.notify }

func (q *Queue) signal() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// Enqueue stores body, envelope and per-recipient state in one synced
// transaction and returns only after it is durable. Concurrent callers are
// group-committed. If env.ID was accepted within DedupWindow (or is in the
// queue, or earlier in the same batch) it returns ErrDuplicate and stores
// nothing. A zero env.ReceivedAt is set to now. If ctx ends while the commit
// is in flight, Enqueue returns ctx.Err() and the message may or may not be
// stored; a resend with the same ID is then recognised as a duplicate.
// The queue keeps body (it reads it until the commit completes, even after
// such an early return, and may serve Body from it later), so the caller
// must not modify it after calling Enqueue.
func (q *Queue) Enqueue(ctx context.Context, env Envelope, body []byte) error {
	q.preparing.Add(1)
	o, err := q.enqueueOp(env, body)
	if err == nil {
		err = q.submit(ctx, o)
	} else {
		q.preparing.Add(-1)
	}
	if err != nil {
		return fmt.Errorf("queue: enqueue %s: %w", env.ID, err)
	}
	return nil
}

// enqueueOp validates env, claims room for it and returns the op that
// stores it.
func (q *Queue) enqueueOp(env Envelope, body []byte) (*op, error) {
	if err := validate(&env); err != nil {
		return nil, err
	}
	if env.PeerFields < 0 || env.PeerFields > len(body) {
		return nil, fmt.Errorf("%w: %d bytes of peer fields in a body of %d", ErrInvalid, env.PeerFields, len(body))
	}
	now := q.now()
	if env.ReceivedAt.IsZero() {
		env.ReceivedAt = now
	}
	// The index keeps the envelope: not a slice of the caller's (maybe
	// the whole message's) buffer.
	env.HopHeader = bytes.Clone(env.HopHeader)
	m := &Message{Envelope: env, Size: int64(len(env.HopHeader) + len(body)), Recipients: make([]Recipient, len(env.Rcpts)), Held: env.Quarantine != ""}
	for i, r := range env.Rcpts {
		m.Recipients[i] = Recipient{Rcpt: r, State: Pending, NextAttempt: now}
	}
	m.NextAttempt = now
	rec, err := encodeMessage(m)
	if err != nil {
		return nil, err
	}
	if err := q.reserve(env.ID, env.Digest, m.Size); err != nil {
		return nil, err
	}
	id := env.ID
	expires := now.Add(q.opts.DedupWindow)
	dval := make([]byte, 0, 20)
	dval = expires.UTC().AppendFormat(dval, time.RFC3339Nano)
	if env.Digest != "" {
		dval = append(append(dval, ' '), env.Digest...)
	}
	o := &op{
		run: func(txn *badger.Txn) (*mutation, error) {
			if dup, err := q.isDuplicate(txn, env.ID, env.Digest); err != nil || dup {
				if err == nil {
					err = ErrDuplicate
				}
				return nil, err
			}
			de := badger.NewEntry(dedupKey(env.ID), dval)
			// badger drops the marker by the wall clock, whatever q.now says.
			de.ExpiresAt = uint64(time.Now().Add(q.opts.DedupWindow).Unix())
			// Shadows of an earlier message of this ID may keep its body
			// under the key this one's goes to (shadowbody.go).
			isets, idels, err := inlineKeptBody(txn, env.ID)
			if err != nil {
				return nil, err
			}
			return &mutation{
				sets: append([]*badger.Entry{
					badger.NewEntry(msgKey(env.ID), rec),
					badger.NewEntry(bodyKey(env.ID), body),
					de,
				}, isets...),
				dels: idels,
				apply: func() {
					q.idx.put(m)
					q.bodies.put(env.ID, body)
				},
				notify: true,
			}, nil
		},
		finish: func() {
			q.idx.unreserve(m.Size)
			if q.enqueuing[id]--; q.enqueuing[id] <= 0 {
				delete(q.enqueuing, id)
			}
		},
		done: make(chan error, 1),
	}
	return o, nil
}

func validate(env *Envelope) error {
	if !meshid.Valid(env.ID) {
		return fmt.Errorf("%w: id %q does not match %s", ErrInvalid, env.ID, meshid.Pattern)
	}
	if len(env.Rcpts) == 0 {
		return fmt.Errorf("%w: no recipients", ErrInvalid)
	}
	for _, r := range env.Rcpts {
		if r.Addr == "" {
			return fmt.Errorf("%w: empty recipient", ErrInvalid)
		}
	}
	return nil
}

// reserve claims room for one message of size bytes, or returns ErrFull or
// ErrDuplicate (already queued). The claim is released by op.finish.
func (q *Queue) reserve(id, digest string, size int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	// With a digest the commit decides (duplicate or collision) from the
	// marker written with the queued message.
	if _, ok := q.idx.items[id]; ok && digest == "" {
		return ErrDuplicate
	}
	n, b := q.idx.count()
	if q.opts.MaxMessages > 0 && n >= q.opts.MaxMessages {
		return ErrFull
	}
	if q.opts.MaxBytes > 0 && b+size > q.opts.MaxBytes {
		return ErrFull
	}
	q.idx.reserve(size)
	if q.enqueuing == nil {
		q.enqueuing = map[string]int{}
	}
	q.enqueuing[id]++
	return nil
}

// isDuplicate reports whether id is queued or remembered, as seen by txn
// (which includes writes earlier in the same batch). With a digest, an ID
// remembered for other content is ErrCollision, not a duplicate.
func (q *Queue) isDuplicate(txn *badger.Txn, id, digest string) (bool, error) {
	queued := false
	if _, err := txn.Get(msgKey(id)); err == nil {
		queued = true
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return false, err
	}
	item, err := txn.Get(dedupKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return queued, nil
	}
	if err != nil {
		return false, err
	}
	// badger expires the key by the wall clock; the stored expiry lets the
	// injected clock decide as well.
	var expires time.Time
	var stored string
	err = item.Value(func(v []byte) error {
		ts, d, _ := strings.Cut(string(v), " ")
		stored = d
		var perr error
		expires, perr = time.Parse(time.RFC3339Nano, ts)
		return perr
	})
	if err != nil {
		return true, nil // unreadable marker: err on the side of not duplicating mail
	}
	if !queued && !q.now().Before(expires) {
		return false, nil
	}
	if digest != "" && stored != "" && digest != stored {
		return false, ErrCollision
	}
	return true, nil
}

// Get returns the queued message (without body) or ErrNotFound.
func (q *Queue) Get(id string) (*Message, error) {
	var m *Message
	err := q.view(func(txn *badger.Txn) error {
		var err error
		m, err = getMessage(txn, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue: get %s: %w", id, err)
	}
	return m, nil
}

// Body returns the message body or ErrNotFound. The slice may be shared
// with the queue's cache of recent bodies: callers must not modify it (an
// append copies, its capacity ends at its length).
func (q *Queue) Body(id string) ([]byte, error) {
	if b, ok := q.bodies.get(id); ok {
		return b, nil
	}
	var body []byte
	err := q.view(func(txn *badger.Txn) error {
		item, err := txn.Get(bodyKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		body, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue: body %s: %w", id, err)
	}
	return body, nil
}

func getMessage(txn *badger.Txn, id string) (*Message, error) {
	item, err := txn.Get(msgKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var m *Message
	err = item.Value(func(v []byte) error {
		var err error
		m, err = decodeMessage(v)
		return err
	})
	return m, err
}

// loadMany reads the records for ids in one transaction, skipping messages
// deleted since the ids were taken from the index.
func (q *Queue) loadMany(ids []string) ([]*Message, error) {
	out := make([]*Message, 0, len(ids))
	err := q.view(func(txn *badger.Txn) error {
		for _, id := range ids {
			m, err := getMessage(txn, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// Due returns up to max messages (max <= 0: all) that are not held and have
// a Pending recipient with NextAttempt <= now, earliest first.
func (q *Queue) Due(now time.Time, max int) ([]*Message, error) {
	return q.DueFunc(now, max, nil)
}

// DueFunc is Due restricted to the messages whose ID want accepts (nil
// accepts every one); refused messages are neither read from disk nor
// counted towards max. A scheduler passes a want that refuses the messages
// it already works on, so that a large backlog waiting for busy
// destinations is not decoded again on every pass. want is called with
// the queue's lock held: it must not call back into the Queue.
func (q *Queue) DueFunc(now time.Time, max int, want func(id string) bool) ([]*Message, error) {
	q.mu.Lock()
	ids := q.idx.dueFunc(now, max, want)
	q.mu.Unlock()
	ms, err := q.loadMany(ids)
	if err != nil {
		return nil, fmt.Errorf("queue: due: %w", err)
	}
	return ms, nil
}

// NextDue returns the earliest NextAttempt over pending recipients of
// messages that are not held; false when there are none.
func (q *Queue) NextDue() (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.idx.next()
}

// List returns queued messages, oldest first, filtered by f.
func (q *Queue) List(f Filter) ([]*Message, error) {
	q.mu.Lock()
	ids := q.idx.list(f)
	q.mu.Unlock()
	ms, err := q.loadMany(ids)
	if err != nil {
		return nil, fmt.Errorf("queue: list: %w", err)
	}
	return ms, nil
}

// Stats returns the number of queued messages, their total body size and
// the oldest ReceivedAt, from memory.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.idx.stats()
}
