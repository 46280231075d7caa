package node

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/meshd/meshd/internal/atomicfile"
	"github.com/meshd/meshd/node/holds"
	"github.com/meshd/meshd/queue"
)

// The node's side of shadow copies (docs/shadow.md): it reaches the other
// nodes' port-691 listeners for the shadow watcher and the group check of
// suspect copies (delivery.Peers), and counts both.

// shadowPeers is the node as delivery.Peers.
//
// It remembers every node the LSDB listed, with its last port-691 address,
// for queue.lifetime after the last listing, in <data_dir>/shadow-peers.json:
// a master restarted with an empty view originates its group's record
// with only the members it has found so far, and a node left out that way
// may hold a copy (the shadow watcher must still ask it) or a twin's
// marker (the group check must still ask it), even across a restart of
// this node. Past queue.lifetime no twin of a message can appear.
type shadowPeers struct {
	n    *Node
	path string
	mu   sync.Mutex
	seq  uint64
	seen map[string]seenPeer // by node name
}

// seenPeer is a node the LSDB listed: its group, port-691 address and
// when last.
type seenPeer struct {
	RG   string    `json:"rg"`
	Addr string    `json:"addr"`
	Last time.Time `json:"last"`
}

func newShadowPeers(n *Node) *shadowPeers {
	p := &shadowPeers{n: n, path: filepath.Join(n.cfg.Node.DataDir, "shadow-peers.json"), seen: map[string]seenPeer{}}
	if b, err := os.ReadFile(p.path); err == nil {
		if err := json.Unmarshal(b, &p.seen); err != nil {
			n.log.Warn("shadow: unreadable peer list; starting afresh", "path", p.path, "err", err)
			p.seen = map[string]seenPeer{}
		}
	}
	return p
}

// refresh folds the LSDB in when it changed, forgets nodes not listed for
// queue.lifetime, and saves the list when it changed. Under p.mu.
func (p *shadowPeers) refresh() {
	n := p.n
	if n.mesh == nil {
		return
	}
	snap := n.mesh.LSDB().Snapshot()
	if snap.Seq() == p.seq {
		return
	}
	p.seq = snap.Seq()
	now := n.now()
	changed := false
	for _, r := range snap.Records() {
		for _, m := range r.Members {
			if m.Name == n.cfg.Node.Name || m.LinkState == "" {
				continue
			}
			old, ok := p.seen[m.Name]
			if !ok || old.Addr != m.LinkState || old.RG != r.RG || now.Sub(old.Last) > time.Minute {
				changed = true
			}
			p.seen[m.Name] = seenPeer{RG: r.RG, Addr: m.LinkState, Last: now}
		}
	}
	for name, sp := range p.seen {
		if now.Sub(sp.Last) > n.cfg.Queue.Lifetime {
			delete(p.seen, name)
			changed = true
		}
	}
	if !changed {
		return
	}
	b, err := json.Marshal(p.seen)
	if err == nil {
		err = atomicfile.Write(p.path, b, 0o600)
	}
	if err != nil {
		n.log.Warn("shadow: save peer list", "path", p.path, "err", err)
	}
}

// PeerAddrs names every node the LSDB lists or listed within
// queue.lifetime, with its port-691 address.
func (p *shadowPeers) PeerAddrs() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refresh()
	out := make(map[string]string, len(p.seen))
	for name, sp := range p.seen {
		out[name] = sp.Addr
	}
	return out
}

// GroupAddrs names the other members of this node's routing group the
// LSDB lists or listed within queue.lifetime.
func (p *shadowPeers) GroupAddrs() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refresh()
	out := map[string]string{}
	for name, sp := range p.seen {
		if sp.RG == p.n.cfg.Node.RoutingGroup {
			out[name] = sp.Addr
		}
	}
	return out
}

// Holds asks node's port-691 listener at addr what it holds of ids (mutual
// TLS with identities: the certificate must name node, as for hops in
// doubt).
func (p *shadowPeers) Holds(ctx context.Context, node, addr string, ids []string) ([]queue.Holding, error) {
	n := p.n
	a := &holds.Asker{Mesh: n.mesh, Self: n.cfg.Node.Name, Dial: n.finder.Dial, TLS: n.finder.TLS}
	if n.id.Enabled() {
		a.NodeTLS = n.id.HoldsTLS
	}
	return a.HoldsAt(ctx, node, addr, ids)
}
