package routing

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshd/meshd/linkstate"
)

// Clock is the time source of a Router; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	Stop() bool
}

// SystemClock is the Clock of package time.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer {
	return time.AfterFunc(d, f)
}

// Hold-down defaults.
const (
	DefaultHoldInitial = 5 * time.Millisecond
	DefaultHoldMax     = time.Second
)

// RouterOptions configure a Router. The zero value is usable.
type RouterOptions struct {
	// HoldInitial is the delay between the first update after a quiet
	// period and the recomputation (default 5ms).
	HoldInitial time.Duration
	// HoldMax caps the hold-down; while updates keep arriving within twice
	// the current hold after a recomputation it doubles up to HoldMax
	// (default 1s). After a quiet period of twice the hold it resets.
	HoldMax time.Duration
	Clock   Clock        // default SystemClock()
	Logger  *slog.Logger // default slog.Default()
	// OnSwap, when set, is called from the Router's goroutine after each
	// new table is published. It must not block for long.
	OnSwap func(*Table)
}

// RouterStats describe a Router's recomputations.
type RouterStats struct {
	Computations uint64        // tables published after the initial one
	LastDuration time.Duration // time the last computation took
	Hold         time.Duration // current hold-down
}

// Router keeps the current routing table of a node. Update hands it new
// link-state; it recomputes after a hold-down that batches bursts and
// swaps the table atomically. Table never blocks.
type Router struct {
	self  Self
	opts  RouterOptions
	log   *slog.Logger
	comp  Computer // used by the run goroutine only
	table atomic.Pointer[Table]

	mu          sync.Mutex
	pending     []*linkstate.Record
	havePending bool
	last        []*linkstate.Record // records of the last computation
	owned       *Owned
	draining    []string
	closed      bool
	stats       RouterStats

	wake    chan struct{} // an update is pending
	fire    chan struct{} // the hold-down timer expired
	changed chan struct{} // a new table was published
	quit    chan struct{}
	stopped chan struct{}
}

// NewRouter computes the initial table from records synchronously and
// starts the goroutine that applies later updates. Close stops it.
func NewRouter(self Self, records []*linkstate.Record, opts RouterOptions) (*Router, error) {
	if opts.HoldInitial <= 0 {
		opts.HoldInitial = DefaultHoldInitial
	}
	if opts.HoldMax <= 0 {
		opts.HoldMax = DefaultHoldMax
	}
	if opts.HoldMax < opts.HoldInitial {
		return nil, fmt.Errorf("routing: new router: hold max %v below hold initial %v", opts.HoldMax, opts.HoldInitial)
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Router{
		self:    self,
		opts:    opts,
		log:     opts.Logger, // the caller's logger names the node and its routing group
		wake:    make(chan struct{}, 1),
		fire:    make(chan struct{}, 1),
		changed: make(chan struct{}, 1),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	t, err := r.comp.Compute(self, records)
	if err != nil {
		return nil, fmt.Errorf("routing: new router: %w", err)
	}
	r.table.Store(t)
	r.stats.Hold = opts.HoldInitial
	go r.run()
	return r, nil
}

// Table returns the current table. It never blocks and never returns nil.
func (r *Router) Table() *Table { return r.table.Load() }

// Update schedules a recomputation from records (normally an LSDB
// snapshot's records). Updates within one hold-down are batched: only the
// latest records are used. The records must not be modified afterwards.
func (r *Router) Update(records []*linkstate.Record) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.pending = records
	r.havePending = true
	r.mu.Unlock()
	signal(r.wake)
}

// SetOwned replaces the organisation's owned address spaces (see Owned)
// and schedules a recomputation like Update, with the latest records.
func (r *Router) SetOwned(o *Owned) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.owned = o
	if !r.havePending {
		r.pending, r.havePending = r.last, true
	}
	r.mu.Unlock()
	signal(r.wake)
}

// SetDraining replaces the members of this node's routing group that
// drain (this node's name included when it drains; see drain.go) and
// schedules a recomputation like Update, with the latest records.
func (r *Router) SetDraining(nodes []string) {
	nodes = slices.Clone(nodes)
	slices.Sort(nodes)
	r.mu.Lock()
	if r.closed || slices.Equal(nodes, r.draining) {
		r.mu.Unlock()
		return
	}
	r.draining = nodes
	if !r.havePending {
		r.pending, r.havePending = r.last, true
	}
	r.mu.Unlock()
	signal(r.wake)
}

// Changed is signalled (capacity one, never blocking the Router) after a
// new table is published.
func (r *Router) Changed() <-chan struct{} { return r.changed }

// Stats returns a copy of the Router's counters.
func (r *Router) Stats() RouterStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Close stops the Router's goroutine and waits for it; a pending update
// is dropped. The last table stays readable.
func (r *Router) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.stopped
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.quit)
	<-r.stopped
	return nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run owns the hold-down state. The hold grows while recomputations are
// triggered within twice the current hold of the previous one (a burst),
// and resets after a quiet period, as SPF throttling does in link-state
// routers.
func (r *Router) run() {
	defer close(r.stopped)
	var (
		timer   Timer
		lastRun time.Time
		hold    = r.opts.HoldInitial
	)
	fire := func() { signal(r.fire) }
	for {
		select {
		case <-r.quit:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-r.wake:
			if timer != nil || !r.hasPending() {
				continue // batched into the armed run, or already consumed by it
			}
			now := r.opts.Clock.Now()
			if lastRun.IsZero() || now.Sub(lastRun) > 2*hold {
				hold = r.opts.HoldInitial
			} else {
				hold = min(2*hold, r.opts.HoldMax)
			}
			r.mu.Lock()
			r.stats.Hold = hold
			r.mu.Unlock()
			timer = r.opts.Clock.AfterFunc(hold, fire)
		case <-r.fire:
			timer = nil
			// The burst window starts before the table is published, so
			// an update that follows the swap is always inside it.
			lastRun = r.opts.Clock.Now()
			r.recompute()
		}
	}
}

func (r *Router) hasPending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.havePending
}

func (r *Router) recompute() {
	r.mu.Lock()
	recs, ok, owned, draining := r.pending, r.havePending, r.owned, r.draining
	r.pending, r.havePending = nil, false
	if ok {
		r.last = recs
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	start := time.Now()
	t, err := r.comp.ComputeDraining(r.self, recs, draining)
	if err != nil { // self was validated by NewRouter; keep the old table
		r.log.Error("routing: recompute failed", "err", err)
		return
	}
	took := time.Since(start)
	t.owned = owned
	r.mu.Lock()
	r.stats.Computations++
	r.stats.LastDuration = took
	t.gen, t.took = r.stats.Computations, took
	r.mu.Unlock()
	r.table.Store(t)
	r.log.Debug("routing: table swapped", "generation", t.gen, "rgs", t.Len(), "took", took)
	if r.opts.OnSwap != nil {
		r.opts.OnSwap(t)
	}
	signal(r.changed)
}
