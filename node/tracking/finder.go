package tracking

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/linkstate/channel"
)

// Peer is a node to ask for tracking events: its name and the address of
// its port-691 listener.
type Peer struct{ Name, Addr string }

// Peers lists every member of every routing group in records, except the
// node self, by name.
func Peers(records []*linkstate.Record, self string) []Peer {
	var out []Peer
	for _, r := range records {
		for _, m := range r.Members {
			if m.Name != self && m.LinkState != "" {
				out = append(out, Peer{Name: m.Name, Addr: m.LinkState})
			}
		}
	}
	slices.SortFunc(out, func(a, b Peer) int { return cmp.Compare(a.Name, b.Name) })
	return slices.CompactFunc(out, func(a, b Peer) bool { return a.Name == b.Name })
}

// Finder asks every node of the mesh for the events of a message.
type Finder struct {
	Log   *Log          // this node's own events
	Peers func() []Peer // the nodes to ask (Peers of the LSDB); nil: none
	// Dial and TLS reach a peer's port-691 listener (channel.Track): TLS
	// is the channel's client TLS under mesh.require_tls or identities.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	TLS  *tls.Config
}

// Ask asks one peer for the events of keys.
func (f *Finder) Ask(ctx context.Context, addr string, keys []string) ([]Event, error) {
	raw, err := channel.Track(ctx, f.Dial, f.TLS, addr, keys)
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, b := range raw {
		var ev Event
		if json.Unmarshal(b, &ev) == nil {
			out = append(out, ev)
		}
	}
	return out, nil
}

// PeerAddrs maps the name of every peer to its port-691 address.
func (f *Finder) PeerAddrs() map[string]string {
	out := map[string]string{}
	if f.Peers != nil {
		for _, p := range f.Peers() {
			out[p.Name] = p.Addr
		}
	}
	return out
}

// Fates asks the peer at addr about copies it took (delivery.CopyFates):
// seen, its log knows the copy; gone, the copy went further (delivered,
// relayed on, or bounced) there.
func (f *Finder) Fates(ctx context.Context, addr string, copyIDs []string) (seen, gone map[string]bool, err error) {
	evs, err := f.Ask(ctx, addr, copyIDs)
	if err != nil {
		return nil, nil, err
	}
	seen, gone = map[string]bool{}, map[string]bool{}
	for _, ev := range evs {
		seen[ev.ID] = true
		if ev.Event == Delivered || ev.Event == Relayed || ev.Event == Bounced {
			gone[ev.ID] = true
		}
	}
	return seen, gone, nil
}

// Across collects the events of key from every node of the mesh,
// following relayed copies and generated DSNs until nothing new turns up.
func (f *Finder) Across(ctx context.Context, key string) Result {
	res := Result{Key: key, Events: []Event{}}
	var peers []Peer
	if f.Peers != nil {
		peers = f.Peers()
	}
	asked := map[string]bool{}
	unreachable := map[string]bool{}
	seen := map[string]bool{}
	keys := []string{normKey(key)}
	for round := 0; round < trackMaxRounds && len(keys) > 0; round++ {
		for _, k := range keys {
			asked[k] = true
		}
		evs := f.gather(ctx, peers, keys, unreachable)
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
	slices.SortStableFunc(res.Events, func(a, b Event) int {
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
func hopDepths(evs []Event) map[[2]string]int {
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
	return slices.Index([]string{Received, Deferred, Relayed, Delivered, Bounced, DSN}, ev)
}

// gather asks this node and every peer, in parallel, for keys.
func (f *Finder) gather(ctx context.Context, peers []Peer, keys []string, unreachable map[string]bool) []Event {
	var mu sync.Mutex
	var out []Event
	if f.Log != nil {
		out = append(out, f.Log.Find(keys)...)
	}
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			evs, err := f.Ask(cctx, p.Addr, keys)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					unreachable[p.Name+" "+p.Addr] = true
				}
				return
			}
			out = append(out, evs...)
		}()
	}
	wg.Wait()
	return out
}
