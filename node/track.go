package node

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshd/meshd/header"
	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/delivery"
	"github.com/meshd/meshd/queue"
)

// Message tracking: every node appends one JSON line per event of a
// message's life (received, relayed, delivered, deferred, bounced, dsn) to
// <data_dir>/track.log. The file is bounded: past trackMaxBytes it is
// renamed to track.log.1 (replacing the older one) and a new one begins.
//
// A node answers "the events for these keys" on its port-691 listener
// (channel.ServerConfig.Track: to mesh peers only, over TLS under
// mesh.require_tls), and
// GET /api/track/{key} asks every member of every routing group in the
// LSDB, following relayed copies hop by hop: the copy ID a node relayed
// is the ID the next hop received the message under.

// Tracking event kinds.
const (
	TrackReceived  = "received"
	TrackRelayed   = "relayed"
	TrackDelivered = "delivered"
	TrackDeferred  = "deferred"
	TrackBounced   = "bounced"
	TrackDSN       = "dsn"
)

// TrackEvent is one line of the tracking log.
type TrackEvent = adminapi.TrackEvent

// TrackResult is the answer of GET /api/track/{key}.
type TrackResult = adminapi.TrackResult

const (
	trackFile     = "track.log"
	trackMaxBytes = 8 << 20
	// trackMaxRounds bounds how many hops the fan-out follows.
	trackMaxRounds = 16
)

// tracker appends events to the node's tracking log.
type tracker struct {
	node, rg string
	now      func() time.Time
	path     string
	max      int64
	log      *slog.Logger

	mu   sync.Mutex
	f    *os.File
	size int64
}

func openTracker(dir, node, rg string, now func() time.Time, log *slog.Logger) (*tracker, error) {
	t := &tracker{node: node, rg: rg, now: now, path: filepath.Join(dir, trackFile), max: trackMaxBytes, log: log}
	if err := t.open(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *tracker) open() error {
	f, err := os.OpenFile(t.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("node: open tracking log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("node: open tracking log: %w", err)
	}
	t.f, t.size = f, st.Size()
	return nil
}

// add appends ev. Tracking never fails mail: errors are logged.
func (t *tracker) add(ev TrackEvent) {
	ev.Node, ev.RG = t.node, t.rg
	line, err := json.Marshal(ev)
	if err != nil {
		return
	}
	line = append(line, '\n')
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return
	}
	if t.size+int64(len(line)) > t.max && t.size > 0 {
		t.rotateLocked()
	}
	n, err := t.f.Write(line)
	t.size += int64(n)
	if err != nil {
		t.log.Warn("tracking log write failed", "err", err)
	}
}

func (t *tracker) rotateLocked() {
	t.f.Close()
	t.f = nil
	if err := os.Rename(t.path, t.path+".1"); err != nil {
		t.log.Warn("tracking log rotate failed", "err", err)
	}
	if err := t.open(); err != nil {
		t.log.Warn("tracking log reopen failed", "err", err)
	}
}

func (t *tracker) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return nil
	}
	err := t.f.Close()
	t.f = nil
	return err
}

// find returns the events of this node whose ID, Message-ID or DSN ID is
// one of keys, oldest first.
func (t *tracker) find(keys []string) []TrackEvent {
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[normKey(k)] = true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []TrackEvent
	for _, p := range []string{t.path + ".1", t.path} {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !containsAny(line, want) {
				continue
			}
			var ev TrackEvent
			if json.Unmarshal(line, &ev) != nil {
				continue
			}
			if want[ev.ID] || (ev.MessageID != "" && want[normKey(ev.MessageID)]) || (ev.DSNID != "" && want[ev.DSNID]) {
				out = append(out, ev)
			}
		}
		f.Close()
	}
	return out
}

// containsAny is a cheap filter before decoding a line.
func containsAny(line []byte, keys map[string]bool) bool {
	lower := bytes.ToLower(line)
	for k := range keys {
		if bytes.Contains(lower, []byte(k)) {
			return true
		}
	}
	return false
}

// normKey makes "<Abc@host>" and "abc@host" the same key.
func normKey(k string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(k), "<>"))
}

// record appends ev, stamped with the clock when it has no time yet.
func (t *tracker) record(ev TrackEvent) {
	if ev.Time.IsZero() {
		ev.Time = t.now().UTC()
	}
	t.add(ev)
}

// received records a message the node has just queued.
func (t *tracker) received(env queue.Envelope, body []byte, listener string) {
	ev := TrackEvent{Event: TrackReceived, ID: env.ID, MessageID: strings.Trim(header.Value(body, "Message-ID"), "<> "),
		From: env.From, Source: env.Source, Listener: listener, Client: env.ClientAddr, Size: int64(len(body))}
	for _, r := range env.Rcpts {
		ev.Rcpts = append(ev.Rcpts, r.Addr)
	}
	t.record(ev)
}

// Attempted records the outcome of one delivery attempt of a destination
// group (delivery.Tracker).
func (t *tracker) Attempted(m *queue.Message, a delivery.Attempt) {
	byOutcome := map[queue.Outcome][]queue.Result{}
	for _, r := range a.Results {
		byOutcome[r.Outcome] = append(byOutcome[r.Outcome], r)
	}
	for _, o := range []queue.Outcome{queue.Delivered, queue.TempFail, queue.PermFail} {
		rs := byOutcome[o]
		if len(rs) == 0 {
			continue
		}
		ev := TrackEvent{ID: m.ID, Kind: a.Kind, Dest: a.Dest, Addr: a.Remote, Reply: rs[0].Reply.String(), Connector: a.Connector}
		for _, r := range rs {
			ev.Rcpts = append(ev.Rcpts, r.Addr)
		}
		switch o {
		case queue.Delivered:
			ev.Event = TrackDelivered
			if a.Kind == delivery.KindMesh {
				ev.Event = TrackRelayed
				ev.CopyID = a.CopyID
				ev.NextHop = a.NextHop
			}
		case queue.TempFail:
			ev.Event = TrackDeferred
		case queue.PermFail:
			ev.Event = TrackBounced
		}
		t.record(ev)
	}
}

// DSNQueued records a delivery status notification queued for m
// (delivery.Tracker).
func (t *tracker) DSNQueued(m *queue.Message, dsnID, kind string) {
	t.record(TrackEvent{Event: TrackDSN, ID: m.ID, DSNID: dsnID, Kind: kind, Rcpts: []string{m.From}})
}

// trackPeer is a node to ask for tracking events.
type trackPeer struct{ name, addr string }

// trackPeers lists every member of every routing group the LSDB knows,
// except this node.
func (n *Node) trackPeers() []trackPeer {
	if n.mesh == nil {
		return nil
	}
	var out []trackPeer
	for _, r := range n.mesh.LSDB().Snapshot().Records() {
		for _, m := range r.Members {
			if m.Name != n.cfg.Node.Name && m.LinkState != "" {
				out = append(out, trackPeer{name: m.Name, addr: m.LinkState})
			}
		}
	}
	slices.SortFunc(out, func(a, b trackPeer) int { return cmp.Compare(a.name, b.name) })
	return slices.CompactFunc(out, func(a, b trackPeer) bool { return a.name == b.name })
}

// answerTrack serves the channel's tracking requests.
func (n *Node) answerTrack(_ context.Context, keys []string) [][]byte {
	if n.trk == nil {
		return nil
	}
	var out [][]byte
	for _, ev := range n.trk.find(keys) {
		if b, err := json.Marshal(ev); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// trackAcross collects the events of key from every node of the mesh,
// following relayed copies and generated DSNs until nothing new turns up.
func (n *Node) trackAcross(ctx context.Context, key string) TrackResult {
	res := TrackResult{Key: key, Events: []TrackEvent{}}
	peers := n.trackPeers()
	asked := map[string]bool{}
	unreachable := map[string]bool{}
	seen := map[string]bool{}
	keys := []string{normKey(key)}
	for round := 0; round < trackMaxRounds && len(keys) > 0; round++ {
		for _, k := range keys {
			asked[k] = true
		}
		evs := n.gatherTrack(ctx, peers, keys, unreachable)
		keys = nil
		for _, ev := range evs {
			b, _ := json.Marshal(ev)
			if seen[string(b)] {
				continue
			}
			seen[string(b)] = true
			res.Events = append(res.Events, ev)
			for _, k := range []string{ev.ID, ev.CopyID, ev.DSNID} {
				if k != "" && !asked[k] && !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
	}
	// Hop by hop: a copy comes after the hop that relayed it, whatever
	// the clocks of the nodes say.
	depth := hopDepths(res.Events)
	slices.SortStableFunc(res.Events, func(a, b TrackEvent) int {
		return cmp.Or(cmp.Compare(depth[[2]string{a.Node, a.ID}], depth[[2]string{b.Node, b.ID}]), a.Time.Compare(b.Time),
			cmp.Compare(trackOrder(a.Event), trackOrder(b.Event)), cmp.Compare(a.Node, b.Node))
	})
	for a := range unreachable {
		res.Unreachable = append(res.Unreachable, a)
	}
	slices.Sort(res.Unreachable)
	return res
}

// hopDepths numbers the hops of a message's copies: 0 where it entered
// the mesh, n+1 for a copy relayed (or a DSN generated) at hop n. A hop is
// a (node, ID) pair: a copy keeps its ID across hops when its recipients
// do not change, so the ID alone does not tell the hops apart.
func hopDepths(evs []TrackEvent) map[[2]string]int {
	type hop = [2]string // node, id
	parent := map[hop]hop{}
	for _, ev := range evs {
		if ev.CopyID != "" && ev.NextHop != "" {
			parent[hop{ev.NextHop, ev.CopyID}] = hop{ev.Node, ev.ID}
		}
		if ev.DSNID != "" && ev.DSNID != ev.ID {
			parent[hop{ev.Node, ev.DSNID}] = hop{ev.Node, ev.ID}
		}
	}
	depth := map[hop]int{}
	for _, ev := range evs {
		d, h := 0, hop{ev.Node, ev.ID}
		for p, ok := parent[h]; ok && d < trackMaxRounds*4; p, ok = parent[h] {
			d, h = d+1, p
		}
		depth[hop{ev.Node, ev.ID}] = d
	}
	return depth
}

// trackOrder puts events of the same second in the order they happen.
func trackOrder(ev string) int {
	return slices.Index([]string{TrackReceived, TrackDeferred, TrackRelayed, TrackDelivered, TrackBounced, TrackDSN}, ev)
}

// gatherTrack asks this node and every peer, in parallel, for keys.
func (n *Node) gatherTrack(ctx context.Context, peers []trackPeer, keys []string, unreachable map[string]bool) []TrackEvent {
	var mu sync.Mutex
	var out []TrackEvent
	if n.trk != nil {
		out = append(out, n.trk.find(keys)...)
	}
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			raw, err := channel.Track(cctx, n.trackDial, n.trackTLS, p.addr, keys)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					unreachable[p.name+" "+p.addr] = true
				}
				return
			}
			for _, b := range raw {
				var ev TrackEvent
				if json.Unmarshal(b, &ev) == nil {
					out = append(out, ev)
				}
			}
		}()
	}
	wg.Wait()
	return out
}
