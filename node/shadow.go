package node

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/node/delivery"
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
		tmp := p.path + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, p.path)
		}
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
	if addr == "" {
		return nil, errors.New("no port-691 address known for " + node)
	}
	ctx, cancel := context.WithTimeout(ctx, doubtAskTimeout)
	defer cancel()
	tc := n.finder.TLS
	if n.id.enabled() {
		tc = n.id.holdsTLS(node)
	}
	ans, err := channel.Holds(ctx, n.finder.Dial, tc, addr, n.cfg.Node.Name, ids)
	if err != nil {
		return nil, err
	}
	out := make([]queue.Holding, len(ans))
	for i, a := range ans {
		out[i] = holdingOf(a)
	}
	return out, nil
}

// holdingOf is the queue's word for a holds answer.
func holdingOf(a channel.Held) queue.Holding {
	switch a {
	case channel.HeldQueued:
		return queue.Queued
	case channel.HeldQueuedSuspect:
		return queue.QueuedSuspect
	case channel.HeldDone:
		return queue.Done
	case channel.HeldRelayed:
		return queue.Relayed
	}
	return queue.Unknown
}

// heldOf is the holds answer for what the queue holds of id: a queued copy
// that is suspect here (delivery.Suspect) says so, for the group check's
// tie-break between two suspect twins.
func (n *Node) heldOf(id string, h queue.Holding) (channel.Held, error) {
	switch h {
	case queue.Queued:
		m, err := n.q.Get(id)
		if errors.Is(err, queue.ErrNotFound) {
			return channel.HeldDone, nil // left the queue since: its marker remembers it
		}
		if err != nil {
			return 0, err
		}
		if delivery.Suspect(m, n.now(), n.cfg.Mesh.ShadowTimeout) {
			return channel.HeldQueuedSuspect, nil
		}
		return channel.HeldQueued, nil
	case queue.QueuedSuspect:
		return channel.HeldQueuedSuspect, nil
	case queue.Done:
		return channel.HeldDone, nil
	case queue.Relayed:
		return channel.HeldRelayed, nil
	}
	return channel.HeldUnknown, nil
}

// shadowMetrics count shadows and what became of them, and of suspect
// copies' group checks.
type shadowMetrics struct {
	events      *prometheus.CounterVec // released, resubmitted
	groupChecks *prometheus.CounterVec // by result
}

// registerShadowMetrics adds the shadow metrics to the node's registry:
// the counters above and gauges read from the queue at scrape time.
func (n *Node) registerShadowMetrics() {
	m := &shadowMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_shadow_events_total",
			Help: "Shadow copies that ended, by event: released (the next node reported the copy delivered or handed on), resubmitted (the next node was lost: the copy went back into the queue).",
		}, []string{"event"}),
		groupChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_shadow_group_checks_total",
			Help: "Group checks of suspect copies before final delivery, by result: deliver (no member holds a twin), twin (a member delivered it: not delivered again), wait (a member holds it queued or did not answer), timeout (unsettled past mesh.shadow_timeout: delivered, a possible duplicate), no-group (no other member).",
		}, []string{"result"}),
	}
	stats := func() queue.ShadowStats { return n.q.ShadowStats() }
	n.metrics.shadow = m
	n.metrics.reg.MustRegister(m.events, m.groupChecks,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshd_shadow_copies", Help: "Shadow copies held for copies handed to other mesh nodes (docs/shadow.md).",
		}, func() float64 { return float64(stats().Count) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshd_shadow_size_bytes", Help: "Bytes the shadow copies take in the queue (bounded by queue.max_shadow_bytes).",
		}, func() float64 { return float64(stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshd_shadow_limit_bytes", Help: "queue.max_shadow_bytes (0: no shadows).",
		}, func() float64 { return float64(n.cfg.Queue.MaxShadowBytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "meshd_shadow_skipped_total", Help: "Hand-offs recorded without a shadow because the shadows were at queue.max_shadow_bytes.",
		}, func() float64 { return float64(stats().Skipped) }),
	)
}

// Shadow counts n shadows that ended with event (delivery.Metrics).
func (m *metrics) Shadow(event string, n int) {
	if m.shadow != nil {
		m.shadow.events.WithLabelValues(event).Add(float64(n))
	}
}

// GroupCheck counts one group check of a suspect copy (delivery.Metrics).
func (m *metrics) GroupCheck(result string) {
	if m.shadow != nil {
		m.shadow.groupChecks.WithLabelValues(result).Inc()
	}
}
