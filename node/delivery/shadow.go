package delivery

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/queue"
)

// Shadow copies (docs/shadow.md): the queue keeps a shadow of every copy
// handed to another mesh node; this loop asks those nodes what became of
// their copies and releases or resubmits the shadows.
//
// The question is a holds request on the peer's port-691 listener
// (channel.Holds, mutual TLS, the certificate must name the peer) for the
// copy IDs, answered from the peer's committed queue state (queue.Holds),
// never from its tracking log, which is not synced:
//
//   - done or relayed: the copy went further (the peer holds its own
//     shadow of a relayed copy): release;
//   - queued: keep;
//   - unknown: the peer's data directory is not the one that said 250
//     (a new disk): the copy is lost with the old one;
//   - no answer, or the peer missing from the LSDB: keep for now.
//
// A shadow is resubmitted only once it has been held for
// mesh.shadow_timeout and the peer was lost (unknown) or unreachable for
// that long; so every twin a resubmission makes is at least that old, and
// the copies it could twin are suspect wherever they are (shadowcheck.go).

// shadowBatch bounds the copy IDs of one request (channel.Holds takes
// 1000).
const shadowBatch = 256

// Shadow events, the "event" label of meshd_shadow_events_total.
const (
	ShadowReleased    = "released"    // the peer reported the copy gone further
	ShadowResubmitted = "resubmitted" // the peer was lost: the copy went back into the queue
)

// Shadows watches the shadows of copies handed to other mesh nodes.
type Shadows struct {
	q       *queue.Queue
	peers   Peers
	metrics Metrics
	now     func() time.Time
	log     *slog.Logger
	check   time.Duration // mesh.shadow_check
	timeout time.Duration // mesh.shadow_timeout
}

// NewShadows builds the watcher; it does nothing (Run returns at once)
// when queue.max_shadow_bytes is 0.
func NewShadows(c config.Config, q *queue.Queue, peers Peers, m Metrics, now func() time.Time, log *slog.Logger) *Shadows {
	s := &Shadows{q: q, peers: peers, metrics: m, now: now, log: log, check: c.Mesh.ShadowCheck, timeout: c.Mesh.ShadowTimeout}
	if c.Queue.MaxShadowBytes <= 0 {
		s.check = 0
	}
	return s
}

// Run checks the shadows every mesh.shadow_check until ctx is done.
func (w *Shadows) Run(ctx context.Context) error {
	if w.check <= 0 {
		return nil
	}
	down := map[string]time.Time{} // peer -> first failed check
	t := time.NewTicker(w.check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		w.CheckOnce(ctx, down)
	}
}

// CheckOnce runs one round over every peer that has shadows here; down
// remembers when each peer first failed to answer (Run keeps it between
// rounds).
func (w *Shadows) CheckOnce(ctx context.Context, down map[string]time.Time) {
	sh, err := w.q.Shadows("")
	if err != nil {
		return
	}
	byPeer := map[string][]*queue.Shadow{}
	for _, s := range sh {
		byPeer[s.Peer] = append(byPeer[s.Peer], s)
	}
	peers := w.peers.PeerAddrs()
	now := w.now()
	for peer, shadows := range byPeer {
		if ctx.Err() != nil {
			return
		}
		// A peer missing from the LSDB is treated like an unreachable one:
		// a crashed member drops out of its group's record for a while.
		err := errors.New("not a member in the LSDB")
		if addr, member := peers[peer]; member {
			err = w.askPeer(ctx, peer, addr, shadows, now)
		}
		if err != nil {
			first, ok := down[peer]
			if !ok {
				down[peer] = now
				continue
			}
			if now.Sub(first) >= w.timeout {
				var due []*queue.Shadow
				for _, s := range shadows {
					if now.Sub(s.HandedAt) >= w.timeout {
						due = append(due, s)
					}
				}
				w.log.Warn("shadow: peer unreachable past mesh.shadow_timeout; resubmitting", "peer", peer, "copies", len(due), "err", err)
				w.resubmit(peer, due)
			}
			continue
		}
		delete(down, peer)
	}
}

// askPeer asks peer about its shadows in batches and applies the answers.
func (w *Shadows) askPeer(ctx context.Context, peer, addr string, shadows []*queue.Shadow, now time.Time) error {
	for len(shadows) > 0 {
		batch := shadows[:min(len(shadows), shadowBatch)]
		shadows = shadows[len(batch):]
		ids := make([]string, len(batch))
		for i, s := range batch {
			ids[i] = s.CopyID
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		held, err := w.peers.Holds(cctx, peer, addr, ids)
		cancel()
		if err != nil {
			return err
		}
		if len(held) != len(ids) {
			return errors.New("shadow: holds answer of the wrong length")
		}
		var lost []*queue.Shadow
		var done []string
		for i, s := range batch {
			switch held[i] {
			case queue.Done, queue.Relayed:
				done = append(done, s.CopyID)
			case queue.Unknown:
				// The copy is not where it was handed: a new data
				// directory. Resubmitted once held for mesh.shadow_timeout,
				// so that its twins are suspect (shadowcheck.go).
				if now.Sub(s.HandedAt) >= w.timeout {
					lost = append(lost, s)
				}
			}
		}
		// One commit for the batch's releases, not one per copy.
		released, err := w.q.ReleaseShadows(done)
		if err != nil {
			return err
		}
		if released > 0 {
			w.metrics.Shadow(ShadowReleased, released)
		}
		if len(lost) > 0 {
			w.log.Warn("shadow: peer does not hold copies it took (new data directory); resubmitting", "peer", peer, "copies", len(lost))
			w.resubmit(peer, lost)
		}
	}
	return nil
}

func (w *Shadows) resubmit(peer string, shadows []*queue.Shadow) {
	n := 0
	for _, s := range shadows {
		err := w.q.ResubmitShadow(s.CopyID)
		switch {
		case err == nil:
			n++
		case !errors.Is(err, queue.ErrNoShadow):
			w.log.Error("shadow: resubmit", "peer", peer, "copy", s.CopyID, "err", err)
		}
	}
	if n > 0 {
		w.metrics.Shadow(ShadowResubmitted, n)
	}
}
