package mesh

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/smtp/xlink"
)

// store adapts the LSDB to what X-LINK2STATE needs. Records installed
// through it are handed to the master when this node is not the master.
type store struct {
	m    *Mesh
	peer string // the server's address in sessions this node opens; "" on the listener
}

// Store is the X-LINK2STATE view of this node's LSDB, for the interposer
// on the node's mesh-facing SMTP listener.
func (m *Mesh) Store() xlink.Store { return store{m: m} }

func (s store) Digest() [32]byte { return s.m.orgDigest(s.m.db.Snapshot().Digest()) }

func (s store) Summaries() []byte {
	b, err := linkstate.EncodeSummaries(s.m.db.Snapshot().Summaries())
	if err != nil {
		// Our own summaries always encode; an error here is a bug.
		s.m.log.Error("encode summaries", "err", err)
	}
	return s.m.wrapSummaries(b)
}

func (s store) Newer(peer []byte) ([][]byte, error) {
	peerOrg, peer, err := unwrapSummaries(peer)
	if err != nil {
		return nil, err
	}
	if s.peer != "" {
		s.m.orgPeers.note(s.peer, peerOrg, s.m.cfg.Now())
	}
	remote, err := linkstate.DecodeSummaries(peer)
	if err != nil {
		return nil, fmt.Errorf("mesh: peer summaries: %w", err)
	}
	snap := s.m.db.Snapshot()
	send, _ := linkstate.Diff(snap.Summaries(), remote)
	var out [][]byte
	// The document first: the peer knows the groups it names before
	// their records arrive.
	if rec, v := s.m.orgRecord(); rec != nil && v > peerOrg {
		out = append(out, rec)
	}
	for _, rg := range send {
		if b, ok := snap.Encoded(rg); ok {
			out = append(out, b)
		}
	}
	return out, nil
}

func (s store) Install(ctx context.Context, recs [][]byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return len(s.m.installEncoded(recs, false)), nil
}

// syncer runs X-LINK2STATE sessions from this node, a source bridgehead,
// to the target bridgeheads of its group's connectors to other groups:
// at once after every LSDB change (debounced) and every SyncInterval.
type syncer struct {
	m    *Mesh
	wake chan struct{}
}

func newSyncer(m *Mesh) *syncer { return &syncer{m: m, wake: make(chan struct{}, 1)} }

func (s *syncer) trigger() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// debounce gathers a burst of LSDB changes into one round of sessions.
const debounce = 5 * time.Millisecond

func (s *syncer) run(ctx context.Context) {
	tick := time.NewTicker(s.m.cfg.SyncInterval)
	defer tick.Stop()
	s.round(ctx) // first contact at start
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.wake:
			select {
			case <-ctx.Done():
				return
			case <-time.After(debounce):
			}
		}
		s.round(ctx)
	}
}

type syncTarget struct{ connector, addr string }

func (s *syncer) targets() []syncTarget {
	var out []syncTarget
	for _, c := range s.m.topology().Connectors {
		if c.To == "" || !isSource(c, s.m.cfg.Node) {
			continue
		}
		for _, t := range c.Targets {
			out = append(out, syncTarget{c.Name, t})
		}
	}
	return out
}

// round runs one session per target, concurrently, and waits for all.
func (s *syncer) round(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range s.targets() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.session(ctx, t)
		}()
	}
	wg.Wait()
}

func (s *syncer) session(ctx context.Context, t syncTarget) {
	m := s.m
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := xlink.Sync(ctx, t.addr, xlink.ClientConfig{
		HeloName: m.cfg.HeloName, TLS: m.cfg.ClientTLS, Dial: m.cfg.Dial, CommandTimeout: 10 * time.Second,
	}, store{m: m, peer: t.addr})
	m.mu.Lock()
	m.stats.SyncSessions++
	if err != nil {
		m.stats.SyncFailures++
		if errors.Is(err, xlink.ErrNotSupported) {
			m.stats.NoExtension++
		}
	}
	m.mu.Unlock()
	if ctx.Err() != nil && err != nil {
		return
	}
	switch {
	case errors.Is(err, xlink.ErrNotSupported):
		m.log.Warn("peer does not speak X-LINK2STATE; it still receives mail", "connector", t.connector, "peer", t.addr)
		m.ReportAttempt(t.connector, t.addr, true)
	case err != nil:
		// A reply, even a refusal, shows the peer reachable; only a
		// session that could not be held counts against the pair, and a
		// 421 greeting (RFC 5321 §3.1: a node that drains, docs/drain.md),
		// which is what the prober sees too: that node takes nothing.
		var re *xlink.ReplyError
		reachable := errors.As(err, &re) && !(re.Command == "greeting" && re.Code == 421)
		m.log.Debug("X-LINK2STATE session failed", "connector", t.connector, "peer", t.addr, "err", err)
		m.ReportAttempt(t.connector, t.addr, reachable)
	default:
		m.ReportAttempt(t.connector, t.addr, true)
		if res.Converged {
			// Equal digests cover the organisation document: the peer
			// holds the version this node holds.
			_, v := m.orgRecord()
			m.orgPeers.note(t.addr, v, m.cfg.Now())
		}
		if res.Received > 0 || res.Sent > 0 {
			m.log.Debug("X-LINK2STATE exchanged", "connector", t.connector, "peer", t.addr,
				"sent", res.Sent, "received", res.Received, "installed", res.Installed)
		}
	}
}
