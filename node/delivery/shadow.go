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
// The question is a tracking request on the peer's port-691 listener
// (channel.Track) for the copy IDs. The peer answers from its tracking
// log: a "delivered" or "relayed" event for the copy means it went further
// (the peer holds its own shadow of a relayed copy): release. No
// "received" event at all means the peer does not remember accepting the
// copy, so its data directory is not the one that said 250: the copy is
// lost with it, resubmit. A peer that is unreachable, or missing from the
// LSDB, for longer than mesh.shadow_timeout is lost too.
// A false verdict costs a second copy on the way, never a second delivery:
// the copy ID stays the same and the node of final delivery drops it.

// shadowBatch bounds the copy IDs of one request.
const shadowBatch = 256

// CopyFates is how the shadow watcher learns what became of copies
// (tracking.Finder): the port-691 address of every node of the LSDB, by
// name, and a peer's answer for copy IDs: seen (its tracking log knows
// the copy) and gone (delivered, relayed or bounced there).
type CopyFates interface {
	PeerAddrs() map[string]string
	Fates(ctx context.Context, addr string, copyIDs []string) (seen, gone map[string]bool, err error)
}

// Shadows watches the shadows of copies handed to other mesh nodes.
type Shadows struct {
	q       *queue.Queue
	fates   CopyFates
	now     func() time.Time
	log     *slog.Logger
	check   time.Duration // mesh.shadow_check
	timeout time.Duration // mesh.shadow_timeout
}

// NewShadows builds the watcher; it does nothing (Run returns at once)
// when queue.max_shadow_bytes is 0.
func NewShadows(c config.Config, q *queue.Queue, fates CopyFates, now func() time.Time, log *slog.Logger) *Shadows {
	s := &Shadows{q: q, fates: fates, now: now, log: log, check: c.Mesh.ShadowCheck, timeout: c.Mesh.ShadowTimeout}
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
		w.checkShadows(ctx, down)
	}
}

// checkShadows runs one round over every peer that has shadows here.
func (w *Shadows) checkShadows(ctx context.Context, down map[string]time.Time) {
	sh, err := w.q.Shadows("")
	if err != nil {
		return
	}
	byPeer := map[string][]string{}
	for _, s := range sh {
		byPeer[s.Peer] = append(byPeer[s.Peer], s.CopyID)
	}
	peers := w.fates.PeerAddrs()
	for peer, ids := range byPeer {
		if ctx.Err() != nil {
			return
		}
		// A peer missing from the LSDB is treated like an unreachable one:
		// a crashed member drops out of its group's record for a while.
		err := errors.New("not a member in the LSDB")
		if addr, member := peers[peer]; member {
			err = w.askPeer(ctx, peer, addr, ids)
		}
		if err != nil {
			first, ok := down[peer]
			if !ok {
				down[peer] = w.now()
				continue
			}
			if w.now().Sub(first) >= w.timeout {
				w.log.Warn("shadow: peer unreachable past mesh.shadow_timeout; resubmitting", "peer", peer, "copies", len(ids), "err", err)
				w.resubmitShadows(peer, ids)
				delete(down, peer)
			}
			continue
		}
		delete(down, peer)
	}
}

// askPeer asks peer about ids in batches and applies the answers.
func (w *Shadows) askPeer(ctx context.Context, peer, addr string, ids []string) error {
	for len(ids) > 0 {
		batch := ids[:min(len(ids), shadowBatch)]
		ids = ids[len(batch):]
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		seen, gone, err := w.fates.Fates(cctx, addr, batch)
		cancel()
		if err != nil {
			return err
		}
		for _, id := range batch {
			switch {
			case gone[id]:
				if err := w.q.ReleaseShadow(id); err != nil && !errors.Is(err, queue.ErrNoShadow) {
					return err
				}
			case !seen[id]:
				w.log.Warn("shadow: peer does not know the copy (new data directory); resubmitting", "peer", peer, "copy", id)
				w.resubmitShadows(peer, []string{id})
			}
		}
	}
	return nil
}

func (w *Shadows) resubmitShadows(peer string, ids []string) {
	for _, id := range ids {
		if err := w.q.ResubmitShadow(id); err != nil && !errors.Is(err, queue.ErrNoShadow) {
			w.log.Error("shadow: resubmit", "peer", peer, "copy", id, "err", err)
		}
	}
}
