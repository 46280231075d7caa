package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/meshd/meshd/internal/atomicfile"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
)

// A node drains (meshctl node drain, docs/drain.md) to leave service
// without losing mail: its SMTP listeners refuse new sessions with 421
// 4.3.2 (smtp.Server.RefuseNew), it gossips that it drains, and its
// routing table hands everything it holds to the group's other members
// (node/mesh, package routing). The state is durable: drain.json in the
// data directory, written before the drain takes effect, read at start.

// drainFile is the drain state's file in the data directory.
const drainFile = "drain.json"

// drainState is what drain.json holds.
type drainState struct {
	Draining bool      `json:"draining"`
	Since    time.Time `json:"since"`
}

// Drain takes the node out of service: saved first, so that a restart
// keeps draining, then applied. Draining again changes nothing.
func (n *Node) Drain() error { return n.setDrain(true) }

// Undrain returns the node to service.
func (n *Node) Undrain() error { return n.setDrain(false) }

func (n *Node) setDrain(on bool) error {
	if n.mesh == nil {
		return errors.New("node: drain: a standalone node has no member to hand its mail to")
	}
	n.drainMu.Lock()
	defer n.drainMu.Unlock()
	if n.drain.Draining == on {
		return nil
	}
	st := drainState{Draining: on}
	if on {
		st.Since = n.now().UTC()
	}
	if err := saveDrain(filepath.Join(n.cfg.Node.DataDir, drainFile), st); err != nil {
		return err
	}
	n.drain = st
	n.drainEmpty = time.Time{}
	n.applyDrain(on)
	if on {
		n.log.Warn("node drains: new SMTP sessions are refused and queued mail goes to the other members of the routing group")
	} else {
		n.log.Warn("node drain ended: back in service")
	}
	return nil
}

// loadDrain reads drain.json at start and puts a saved drain back in
// force (before the listeners accept anything).
func (n *Node) loadDrain() error {
	b, err := os.ReadFile(filepath.Join(n.cfg.Node.DataDir, drainFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: read drain state: %w", err)
	}
	var st drainState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("node: drain state %s: %w", drainFile, err)
	}
	if !st.Draining || n.mesh == nil {
		return nil
	}
	n.drain = st
	n.applyDrain(true)
	n.log.Warn("node drains (since before the restart): new SMTP sessions are refused", "since", st.Since.Format(time.RFC3339))
	return nil
}

func (n *Node) applyDrain(on bool) {
	for _, s := range n.smtpServers() {
		s.RefuseNew(on)
	}
	n.mesh.SetDraining(on)
	n.del.RetryAll()
}

func (n *Node) smtpServers() []*smtp.Server {
	var out []*smtp.Server
	for _, s := range []*smtp.Server{n.smtpSrv, n.subSrv, n.subsSrv, n.meshSrv} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// Draining reports whether the node drains.
func (n *Node) Draining() bool {
	n.drainMu.Lock()
	defer n.drainMu.Unlock()
	return n.drain.Draining
}

// DrainStatus is the answer of GET /api/node/drain.
func (n *Node) DrainStatus() adminapi.DrainStatus {
	n.drainMu.Lock()
	st := n.drain
	n.drainMu.Unlock()
	out := adminapi.DrainStatus{Node: n.cfg.Node.Name, RG: n.cfg.Node.RoutingGroup, Draining: st.Draining, Members: []string{}}
	if st.Draining {
		since := st.Since
		out.Since = &since
	}
	// Transactions before the queue: a message acknowledged by a
	// transaction that ended before this count is in the queue read after.
	for _, s := range n.smtpServers() {
		out.Transactions += s.Transactions()
	}
	out.Queued = n.q.Stats().Messages
	held := true
	if msgs, err := n.q.List(queue.Filter{Held: &held}); err == nil {
		out.Held = len(msgs)
	}
	out.Shadows = n.q.ShadowStats().Count
	if n.mesh != nil {
		out.DrainingMembers = n.mesh.DrainingMembers()
		for _, m := range n.mesh.View().Members {
			if m.Name != n.cfg.Node.Name && !slices.Contains(out.DrainingMembers, m.Name) {
				out.Members = append(out.Members, m.Name)
			}
		}
		slices.Sort(out.Members)
	}
	empty := st.Draining && out.Queued == 0 && out.Transactions == 0
	out.Done = empty && n.settled(empty)
	return out
}

// settled reports whether the node has held no mail for long enough that
// the nodes which handed it copies have asked it about them and dropped
// their shadows (docs/shadow.md): two mesh.shadow_check rounds when shadows
// are on. Were the node stopped before that, they would resubmit those
// copies after mesh.shadow_timeout: traffic, and copies the final node's
// duplicate detection has to catch.
func (n *Node) settled(empty bool) bool {
	n.drainMu.Lock()
	defer n.drainMu.Unlock()
	if !empty {
		n.drainEmpty = time.Time{}
		return false
	}
	now := n.now()
	if n.drainEmpty.IsZero() {
		n.drainEmpty = now
	}
	if n.cfg.Queue.MaxShadowBytes <= 0 {
		return true
	}
	return now.Sub(n.drainEmpty) >= 2*n.cfg.Mesh.ShadowCheck
}

// drainGauge is meshd_node_draining.
func (n *Node) drainGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshd_node_draining",
		Help: "1 while the node drains (meshctl node drain): it refuses new SMTP sessions and hands its queue to the other members of its routing group.",
	}, func() float64 {
		if n.Draining() {
			return 1
		}
		return 0
	})
}

// saveDrain writes the state durably: a synced temporary file renamed
// over the old one, and the directory synced.
func saveDrain(path string, st drainState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("node: save drain state: %w", err)
	}
	return nil
}
