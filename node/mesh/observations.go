package mesh

import (
	"math"
	"time"

	"github.com/meshd/meshd/linkstate/channel"
)

// State a peer set ends with its session. The master holds observations
// per reporter: its own prober, the seeds a new master carries over from
// its group's last record, and every member session of the port-691
// channel. When a session ends (the member went away, or an intruder with
// a member's certificate reported and hung up), its observations are kept
// for mesh.observation_lease, long enough for the member to reconnect and
// resend its full set, and then dropped: a pair nobody reports any more
// is forgotten by the master's connector state, as for a member that left
// the group. So a forged report cannot pin a connector's state past its
// session, and a member cut off from its master stops speaking for its
// pairs after the lease.

const (
	ownReporter  uint64 = 0              // this node's prober (channel sessions count from 1)
	seedReporter uint64 = math.MaxUint64 // the pairs of the group's last record, carried by a new master
)

// foldObservations records observations of reporter in the master
// state, keeping its newest per pair, and asks for a new record.
func (m *Mesh) foldObservations(reporter uint64, obs []channel.Observation) {
	m.mu.Lock()
	m.holdLocked(reporter, obs)
	m.mu.Unlock()
	m.poke()
}

func (m *Mesh) holdLocked(reporter uint64, obs []channel.Observation) {
	if len(obs) == 0 {
		return
	}
	held := m.master.obs[reporter]
	if held == nil {
		held = map[pairKey]channel.Observation{}
		m.master.obs[reporter] = held
	}
	for _, o := range obs {
		k := pairKey{o.Connector, o.Source, o.Target}
		if prev, ok := held[k]; ok && prev.At.After(o.At) {
			continue
		}
		held[k] = o
	}
}

// memberSessionEnded starts the lease of a member session's observations.
func (m *Mesh) memberSessionEnded(s channel.Session) {
	m.mu.Lock()
	_, held := m.master.obs[s.ID]
	if held {
		m.master.leases[s.ID] = m.cfg.Now().Add(m.cfg.ObservationLease)
	}
	m.mu.Unlock()
	if held {
		m.log.Info("member session ended; its observations end after the lease", "peer", s.Node, "for", m.cfg.ObservationLease)
	}
}

// endLeasesLocked drops the observations of reporters whose lease is over.
func (m *Mesh) endLeasesLocked(now time.Time) {
	for r, until := range m.master.leases {
		if now.Before(until) {
			continue
		}
		if n := len(m.master.obs[r]); n > 0 && r != seedReporter {
			m.log.Info("observations of an ended member session dropped", "session", r, "count", n)
		}
		delete(m.master.obs, r)
		delete(m.master.leases, r)
	}
}

// currentObservationsLocked is the newest observation of each pair of
// connector id over every reporter held, for sources still in the group
// (a pair whose source left is dropped from every reporter). Between
// equal times the later session wins.
func (m *Mesh) currentObservationsLocked(id string, live map[string]bool) map[pairKey]channel.Observation {
	type pick struct {
		o channel.Observation
		r uint64
	}
	best := map[pairKey]pick{}
	for r, held := range m.master.obs {
		for k, o := range held {
			if k.Connector != id {
				continue
			}
			if !live[k.Source] {
				delete(held, k)
				continue
			}
			rank := r
			if r == seedReporter {
				rank = 0 // seeds carry no time: any report replaces them
			}
			if b, ok := best[k]; ok && (b.o.At.After(o.At) || (b.o.At.Equal(o.At) && b.r > rank)) {
				continue
			}
			best[k] = pick{o, rank}
		}
	}
	out := make(map[pairKey]channel.Observation, len(best))
	for k, b := range best {
		out[k] = b.o
	}
	return out
}
