package node

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/meshd/meshd/linkstate/channel"
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

func (n *Node) watchShadows(ctx context.Context) error {
	if n.cfg.Queue.MaxShadowBytes <= 0 {
		return nil
	}
	down := map[string]time.Time{} // peer -> first failed check
	t := time.NewTicker(n.cfg.Mesh.ShadowCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n.checkShadows(ctx, down)
	}
}

// checkShadows runs one round over every peer that has shadows here.
func (n *Node) checkShadows(ctx context.Context, down map[string]time.Time) {
	sh, err := n.q.Shadows("")
	if err != nil {
		return
	}
	byPeer := map[string][]string{}
	for _, s := range sh {
		byPeer[s.Peer] = append(byPeer[s.Peer], s.CopyID)
	}
	peers := map[string]string{}
	for _, p := range n.trackPeers() {
		peers[p.name] = p.addr
	}
	for peer, ids := range byPeer {
		if ctx.Err() != nil {
			return
		}
		// A peer missing from the LSDB is treated like an unreachable one:
		// a crashed member drops out of its group's record for a while.
		err := errors.New("not a member in the LSDB")
		if addr, member := peers[peer]; member {
			err = n.askPeer(ctx, peer, addr, ids)
		}
		if err != nil {
			first, ok := down[peer]
			if !ok {
				down[peer] = n.now()
				continue
			}
			if n.now().Sub(first) >= n.cfg.Mesh.ShadowTimeout {
				n.log.Warn("shadow: peer unreachable past mesh.shadow_timeout; resubmitting", "peer", peer, "copies", len(ids), "err", err)
				n.resubmitShadows(peer, ids)
				delete(down, peer)
			}
			continue
		}
		delete(down, peer)
	}
}

// askPeer asks peer about ids in batches and applies the answers.
func (n *Node) askPeer(ctx context.Context, peer, addr string, ids []string) error {
	for len(ids) > 0 {
		batch := ids[:min(len(ids), shadowBatch)]
		ids = ids[len(batch):]
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		raw, err := channel.Track(cctx, n.trackDial, n.trackTLS, addr, batch)
		cancel()
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		gone := map[string]bool{}
		for _, b := range raw {
			var ev TrackEvent
			if json.Unmarshal(b, &ev) != nil {
				continue
			}
			seen[ev.ID] = true
			if ev.Event == TrackDelivered || ev.Event == TrackRelayed || ev.Event == TrackBounced {
				gone[ev.ID] = true
			}
		}
		for _, id := range batch {
			switch {
			case gone[id]:
				if err := n.q.ReleaseShadow(id); err != nil && !errors.Is(err, queue.ErrNoShadow) {
					return err
				}
			case !seen[id]:
				n.log.Warn("shadow: peer does not know the copy (new data directory); resubmitting", "peer", peer, "copy", id)
				n.resubmitShadows(peer, []string{id})
			}
		}
	}
	return nil
}

func (n *Node) resubmitShadows(peer string, ids []string) {
	for _, id := range ids {
		if err := n.q.ResubmitShadow(id); err != nil && !errors.Is(err, queue.ErrNoShadow) {
			n.log.Error("shadow: resubmit", "peer", peer, "copy", id, "err", err)
		}
	}
}
