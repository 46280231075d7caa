package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp/reply"
)

// maxInflightFactor bounds the messages being worked on at once to this many
// times outbound.max_concurrent, so a large backlog does not become a large
// number of goroutines.
const maxInflightFactor = 16

// Deliverer is the delivery scheduler. It waits on the queue's Notify
// channel and a timer for the next due attempt, takes due messages, groups
// their due recipients per destination and delivers each group under the
// destination's concurrency cap. Backoff is persisted (queue.Attempt) before
// every attempt so that a crash mid-attempt cannot cause a retry storm.
type Deliverer struct {
	cfg     config.Config
	log     *slog.Logger
	now     func() time.Time
	q       *queue.Queue
	out     *transports
	peers   Peers // group check of suspect copies (shadowcheck.go); nil: none
	track   Tracker
	metrics Metrics
	sign    func(*slog.Logger, []byte) []byte // Deps.Sign; nil: send as stored
	// sched is the retry schedule and queue lifetimes in force; a reload
	// (SetSchedule) swaps it while deliveries run.
	sched atomic.Pointer[schedule]

	global chan struct{} // outbound.max_concurrent

	mu       sync.Mutex
	inflight map[string]bool
	// attempted holds the messages this process has attempted; a pending
	// recipient attempted before but not by this process is in doubt.
	attempted map[string]bool
	dests     map[string]chan struct{} // per-destination semaphores
	// waiting holds messages that found no route, or whose mesh hop
	// failed: a new routing table retries them at once.
	waiting map[string]bool
	wg      sync.WaitGroup
	wake    chan struct{}
}

// New builds the scheduler and its transports (SMTP clients for MX,
// smarthost, LMTP and mesh hops); nothing runs until Run.
func New(c config.Config, deps Deps) (*Deliverer, error) {
	out, err := newTransports(c, deps)
	if err != nil {
		return nil, err
	}
	d := &Deliverer{
		cfg:       c,
		log:       deps.Log,
		now:       deps.Now,
		q:         deps.Queue,
		out:       out,
		peers:     deps.Peers,
		track:     deps.Track,
		metrics:   deps.Metrics,
		sign:      deps.Sign,
		global:    make(chan struct{}, c.Outbound.MaxConcurrent),
		inflight:  make(map[string]bool),
		attempted: make(map[string]bool),
		dests:     make(map[string]chan struct{}),
		waiting:   make(map[string]bool),
		wake:      make(chan struct{}, 1),
	}
	d.sched.Store(newSchedule(c.Queue))
	return d, nil
}

// schedule is the part of queue.* that applies to the next decision about
// each message: when to retry, when to warn, when to give up.
type schedule struct {
	backoff      queue.Backoff
	lifetime     time.Duration
	delayWarning time.Duration
}

func newSchedule(q config.Queue) *schedule {
	return &schedule{
		backoff:      q.Retry,
		lifetime:     q.Lifetime,
		delayWarning: q.DelayWarning,
	}
}

// Close closes the transports' idle sessions (after Run has returned).
func (d *Deliverer) Close() error { return d.out.close() }

// SetSchedule puts a reloaded queue.* (retry schedule, lifetime, delay
// warning) in force for the next decision about each message.
func (d *Deliverer) SetSchedule(q config.Queue) {
	d.sched.Store(newSchedule(q))
	d.kick()
}

// Lifetime is the queue.lifetime in force.
func (d *Deliverer) Lifetime() time.Duration { return d.sched.Load().lifetime }

// CloseMeshSessions closes the idle sessions of mesh hops, and keeps no
// session busy now once its message is through: the next hop to any node
// dials again and verifies the node's certificate with the trust in force
// (called after a reload changed the trusted CAs).
func (d *Deliverer) CloseMeshSessions() {
	if d.out.meshClient != nil {
		d.out.meshClient.CloseIdle()
	}
}

// ClearDead forgets every unreachable destination, so that an operator's
// retry dials at once.
func (d *Deliverer) ClearDead() { d.out.clearDead() }

// Run schedules deliveries until ctx is done, then waits for the attempts in
// flight (they see the cancelled context and return quickly).
func (d *Deliverer) Run(ctx context.Context) error {
	defer d.wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		blocked := d.dispatch(ctx)
		wait := time.Minute
		if t, ok := d.q.NextDue(); ok && !blocked {
			wait = min(wait, max(t.Sub(d.now()), 20*time.Millisecond))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-d.q.Notify():
			// Let a burst of enqueues gather so one Due call serves many.
			coalesce := time.NewTimer(dispatchCoalesce)
			select {
			case <-ctx.Done():
			case <-coalesce.C:
			}
			coalesce.Stop()
		case <-d.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// dispatchCoalesce is how long the scheduler waits after a Notify before
// looking for due messages.
const dispatchCoalesce = 2 * time.Millisecond

// dispatch starts a worker for every due message not already in flight. It
// reports blocked when nothing could start although messages are due
// (every slot taken, or every due message already in flight): then only a
// finishing worker or a new message changes anything, and both wake run.
func (d *Deliverer) dispatch(ctx context.Context) (blocked bool) {
	limit := cap(d.global) * maxInflightFactor
	d.mu.Lock()
	busy := len(d.inflight)
	if ctx.Err() != nil {
		d.mu.Unlock()
		return false
	}
	// Refill only once a quarter of the slots is free: every pass walks
	// the due messages in flight, so refilling after each finished message
	// would cost a walk of up to limit entries per delivery.
	if busy > limit-max(limit/4, 1) {
		d.mu.Unlock()
		return true
	}
	// Only this goroutine adds to inflight, so the copy can only hold
	// messages that have finished since (they are skipped this pass and
	// their done wakes the next).
	skip := maps.Clone(d.inflight)
	d.mu.Unlock()
	// Messages in flight stay due while they wait for a busy destination;
	// DueFunc passes over them without reading them from disk, which on a
	// backlog would cost a decode per message in flight on every pass.
	skipped := false
	msgs, err := d.q.DueFunc(d.now(), min(limit-busy, 256), func(id string) bool {
		if skip[id] {
			skipped = true
			return false
		}
		return true
	})
	if err != nil {
		if !errors.Is(err, queue.ErrClosed) {
			d.log.Error("queue: due", "err", err)
		}
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	started := 0
	for _, m := range msgs {
		if d.inflight[m.ID] || len(d.inflight) >= limit {
			continue
		}
		d.inflight[m.ID] = true
		started++
		d.wg.Add(1)
		go func() {
			defer d.done(m.ID)
			d.process(ctx, m)
		}()
	}
	return started == 0 && (len(msgs) > 0 || skipped)
}

func (d *Deliverer) markWaiting(id string) {
	d.mu.Lock()
	d.waiting[id] = true
	d.mu.Unlock()
}

// Reroute makes every message waiting on the mesh due now: the routing
// table changed, so it may have a way out.
func (d *Deliverer) Reroute() {
	d.mu.Lock()
	ids := make([]string, 0, len(d.waiting))
	for id := range d.waiting {
		ids = append(ids, id)
	}
	clear(d.waiting)
	d.mu.Unlock()
	for _, id := range ids {
		if err := d.q.Retry(id); err != nil && !errors.Is(err, queue.ErrNotFound) && !errors.Is(err, queue.ErrClosed) {
			d.log.Warn("queue: retry after route change", "qid", id, "err", err)
		}
	}
	if len(ids) > 0 {
		d.log.Debug("routing table changed: retrying waiting messages", "count", len(ids))
	}
}

// kick wakes the scheduler to look at the queue again (a new schedule).
func (d *Deliverer) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Deliverer) done(id string) {
	d.mu.Lock()
	delete(d.inflight, id)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	d.wg.Done()
}

// process makes one delivery pass over a message: expiry, delay warning,
// then one attempt per destination group of its due recipients.
func (d *Deliverer) process(ctx context.Context, m *queue.Message) {
	log := d.log.With("qid", m.ID)
	// The body is read only once a group holds a delivery slot (or a DSN
	// needs it), so messages waiting for a busy destination hold no body.
	body := sync.OnceValues(func() ([]byte, error) {
		b, err := d.q.Body(m.ID)
		if err != nil && !errors.Is(err, queue.ErrNotFound) && !errors.Is(err, queue.ErrClosed) {
			log.Error("queue: read body", "err", err)
		}
		return b, err
	})
	now := d.now()
	if now.Sub(m.ReceivedAt) >= d.sched.Load().lifetime {
		if b, err := body(); err == nil {
			d.expire(m, stored(m, b), now)
		}
		return
	}
	d.maybeDelayDSN(m, body, now)

	d.mu.Lock()
	inDoubt := !d.attempted[m.ID]
	d.attempted[m.ID] = true
	d.mu.Unlock()

	if d.out.mesh != nil {
		d.resolveDoubts(ctx, log, m, now)
	}
	groups := d.out.route(m, now)
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.attempt(ctx, log, m, body, g, inDoubt)
		}()
	}
	wg.Wait()
}

// attempt delivers one destination group: wait for the destination's slot,
// persist the backoff, deliver, send a DSN for permanent failures, record.
func (d *Deliverer) attempt(ctx context.Context, log *slog.Logger, m *queue.Message, loadBody func() ([]byte, error), g *group, inDoubt bool) {
	release, err := d.acquire(ctx, g)
	if err != nil {
		return
	}
	defer release()
	raw, err := loadBody()
	if err != nil {
		return // deleted meanwhile, or the queue is closing
	}
	body := stored(m, raw)
	if d.checkGroup(ctx, log, m, g) {
		return // a twin was delivered by another member, or the copy waits for the group
	}
	if g.kind == KindSmarthost || g.kind == KindMX {
		// Leaving the organisation: without the mesh's fields, then signed.
		body = outside(m, raw)
		if d.sign != nil {
			body = content{body: d.sign(log, body.joined())}
		}
	}

	attempts := 0
	addrs := make([]string, len(g.rcpts))
	for i, r := range g.rcpts {
		addrs[i] = r.Addr
		attempts = max(attempts, r.Attempts)
	}
	now := d.now()
	next := now.Add(d.sched.Load().backoff.Next(attempts+1, nil))
	// Never schedule past expiry, so the failure DSN goes out on time.
	if exp := m.ReceivedAt.Add(d.sched.Load().lifetime); next.After(exp) {
		next = exp
	}
	// A hop to another mesh node is recorded with the backoff: it is in
	// doubt until its outcome is (hopdoubt.go).
	var hop *queue.Doubt
	if g.kind == KindMesh {
		if hop = d.out.hopVia(m, body.body, g, g.hops[0]); hop != nil {
			g.via = hop.Addr
			g.redirect = func(addr string) error {
				return d.q.Redirect(m.ID, addrs, d.out.hopVia(m, body.body, g, addr))
			}
		}
	}
	if err := d.q.AttemptVia(m.ID, addrs, next, hop); err != nil {
		if !errors.Is(err, queue.ErrNotFound) && !errors.Is(err, queue.ErrClosed) {
			log.Error("queue: persist attempt", "err", err)
		}
		return
	}
	results, remoteMTA := d.out.deliver(ctx, m, body, g, inDoubt)
	if ctx.Err() != nil {
		// Shutting down: a temporary failure may just be the cancellation,
		// so only certain outcomes are recorded (a delivered copy must not be
		// delivered again after restart); the rest is retried after the
		// persisted backoff.
		// A hop in doubt is recorded: the copy may be at the next node.
		results = slices.DeleteFunc(results, func(r queue.Result) bool { return r.Outcome == queue.TempFail && r.Doubt == nil })
		if len(results) == 0 {
			return
		}
	}
	var failed, delivered []queue.Result
	if g.kind == KindNoRoute || g.kind == KindMesh {
		for _, r := range results {
			if r.Outcome == queue.TempFail {
				d.markWaiting(m.ID)
				break
			}
		}
	}
	for _, r := range results {
		switch r.Outcome {
		case queue.Delivered:
			delivered = append(delivered, r)
			d.metrics.Outcome(g.kind, queue.Delivered)
			log.Info("delivered", "rcpt", r.Addr, "dest", g.key, "reply", r.Reply)
		case queue.TempFail:
			d.metrics.Outcome(g.kind, queue.TempFail)
			log.Info("deferred", "rcpt", r.Addr, "dest", g.key, "reply", r.Reply, "next", next)
		case queue.PermFail:
			d.metrics.Outcome(g.kind, queue.PermFail)
			log.Info("bounced", "rcpt", r.Addr, "dest", g.key, "reply", r.Reply)
			failed = append(failed, r)
		}
	}
	d.track.Attempted(m, g.attempt(results, remoteMTA, d.out.memberAt(remoteMTA)))
	// The DSN is queued before the failure is recorded: a crash in
	// between re-sends the same DSN ID, which the queue drops as a duplicate.
	if len(failed) > 0 {
		d.failureDSN(m, body, failed, remoteMTA)
	}
	switch {
	case len(delivered) == 0:
	case g.kind == KindMaildir || g.kind == KindLMTP:
		d.successDSN(m, body, delivered, DSNSuccess, remoteMTA)
	case g.kind == KindSmarthost || g.kind == KindMX:
		// Out of the mesh to a server without DSN: this was the last hop
		// that could report on the message (RFC 3461 §4.2).
		var relayed []queue.Result
		for _, r := range delivered {
			if r.Relayed {
				relayed = append(relayed, r)
			}
		}
		d.successDSN(m, body, relayed, DSNRelayed, remoteMTA)
	}
	if g.kind == KindMesh {
		// The next node owns these recipients now. When every recipient
		// went on like this, the queue drops the copy's dedup marker with
		// the message, so a route change may bring it back here.
		for i := range results {
			results[i].HandedOn = results[i].Outcome == queue.Delivered
		}
	}
	after, err := d.record(m, g, results, remoteMTA)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		d.Forget(m.ID)
	case err != nil:
		log.Error("queue: record results", "err", err)
	case !hasPending(after):
		d.Forget(m.ID)
	}
}

// acquire takes a global slot and one of the destination's slots.
func (d *Deliverer) acquire(ctx context.Context, g *group) (release func(), err error) {
	var dest chan struct{}
	if g.perDestCap > 0 {
		d.mu.Lock()
		dest = d.dests[g.key]
		if dest == nil {
			dest = make(chan struct{}, g.perDestCap)
			d.dests[g.key] = dest
		}
		d.mu.Unlock()
		select {
		case dest <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	select {
	case d.global <- struct{}{}:
	case <-ctx.Done():
		if dest != nil {
			<-dest
		}
		return nil, ctx.Err()
	}
	return func() {
		<-d.global
		if dest != nil {
			<-dest
		}
	}, nil
}

// expire gives up on every pending recipient after queue.lifetime and sends
// the failure DSN (RFC 3464 status 4.4.7, action failed).
func (d *Deliverer) expire(m *queue.Message, body content, now time.Time) {
	var failed []queue.Result
	for _, r := range m.Recipients {
		if r.State != queue.Pending {
			continue
		}
		// TempFail marks the recipient as expired for the DSN (status 4.4.7).
		failed = append(failed, queue.Result{Addr: r.Addr, Outcome: queue.TempFail, Reply: reply.ParseOrText(r.LastError)})
	}
	if len(failed) == 0 {
		return
	}
	d.failureDSN(m, body, failed, "")
	if _, err := d.q.Expire(m.ID, nil, fmt.Sprintf("expired at %s", now.UTC().Format(time.RFC3339))); err != nil &&
		!errors.Is(err, queue.ErrNotFound) {
		d.log.Error("queue: expire", "qid", m.ID, "err", err)
		return
	}
	d.Forget(m.ID)
	d.metrics.Expired(len(failed))
	d.log.Info("expired", "qid", m.ID, "rcpts", len(failed))
}

// Forget drops the bookkeeping of a message that left the queue.
func (d *Deliverer) Forget(id string) {
	d.mu.Lock()
	delete(d.attempted, id)
	d.mu.Unlock()
}

func hasPending(m *queue.Message) bool {
	for _, r := range m.Recipients {
		if r.State == queue.Pending {
			return true
		}
	}
	return false
}

// record applies the results of an attempt; a hop to another mesh node
// keeps a shadow of the copy in the same commit (docs/shadow.md), unless
// queue.max_shadow_bytes is 0.
// remote is the address of the hop that took the copy (not always the
// first of g.hops: a hop that failed is skipped).
func (d *Deliverer) record(m *queue.Message, g *group, results []queue.Result, remote string) (*queue.Message, error) {
	if g.kind != KindMesh || g.copyID == "" || d.cfg.Queue.MaxShadowBytes <= 0 || remote == "" {
		return d.q.RecordMessage(m.ID, results)
	}
	peer := d.out.memberAt(remote)
	if peer == "" {
		peer = remote
	}
	return d.q.RecordHandOff(m.ID, results, queue.HandOff{
		CopyID:  g.copyID,
		Peer:    peer,
		Expires: m.ReceivedAt.Add(d.cfg.Queue.Lifetime),
	})
}

// HopName names the destination the current routing would send m's
// recipient addr to, for people and metric labels: the next mesh node
// ("name host:port"), "no route", or the destination ("mx example.org").
func (d *Deliverer) HopName(m *queue.Message, addr string) string {
	g := d.out.groupFor(m, addr)
	switch g.kind {
	case KindMesh:
		if name := d.out.memberAt(g.hops[0]); name != "" {
			return name + " " + g.hops[0]
		}
		return g.hops[0]
	case KindNoRoute:
		return "no route"
	}
	return strings.Replace(g.key, ":", " ", 1)
}
