// Package drain takes a node out of service and back (meshctl node drain,
// docs/drain.md) without losing mail: its SMTP listeners refuse new
// sessions with 421 4.3.2 (smtp.Server.RefuseNew), it gossips that it
// drains, and its routing table hands everything it holds to the group's
// other members (node/mesh, package routing). The state is durable:
// drain.json in the data directory, written before the drain takes effect,
// read at start.
//
//	meshctl / admin API ──► Drainer ──► drain.json
//	                           ├──► Server.RefuseNew   (every SMTP listener)
//	                           ├──► Mesh.SetDraining   (gossip, routing)
//	                           └──► Retry              (route the queue again)
package drain

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/internal/atomicfile"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/membership"
	"github.com/meshd/meshd/queue"
)

// File is the drain state's file in the data directory.
const File = "drain.json"

// Server is what a drain needs of an SMTP listener (smtp.Server).
type Server interface {
	RefuseNew(on bool)
	Transactions() int
}

// Mesh is what a drain needs of the mesh (node/mesh.Mesh).
type Mesh interface {
	SetDraining(on bool)
	DrainingMembers() []string
	View() membership.View // the routing group's members, this node among them
}

// Queue is what the drain status reads of the queue (queue.Queue).
type Queue interface {
	Stats() queue.Stats
	List(queue.Filter) ([]*queue.Message, error)
	ShadowStats() queue.ShadowStats
}

// Deps is what a Drainer is built from.
type Deps struct {
	Node, RG string
	DataDir  string
	// Shadows says whether the node keeps shadow copies
	// (queue.max_shadow_bytes > 0); ShadowCheck is mesh.shadow_check.
	Shadows     bool
	ShadowCheck time.Duration
	Servers     []Server // every SMTP listener, the mesh's among them
	Mesh        Mesh     // nil on a standalone node: it cannot drain
	Queue       Queue
	Retry       func() // routes every queued message again (delivery.Deliverer.RetryAll)
	Now         func() time.Time
	Log         *slog.Logger
}

// state is what drain.json holds.
type state struct {
	Draining bool      `json:"draining"`
	Since    time.Time `json:"since"`
}

// Drainer holds the drain state in force, as drain.json holds it.
type Drainer struct {
	d     Deps
	mu    sync.Mutex
	st    state
	empty time.Time // since when a draining node holds no mail (settled)
}

// Load reads drain.json and puts a saved drain back in force: call it
// before the listeners accept anything.
func Load(d Deps) (*Drainer, error) {
	dr := &Drainer{d: d}
	b, err := os.ReadFile(filepath.Join(d.DataDir, File))
	if errors.Is(err, os.ErrNotExist) {
		return dr, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: read drain state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("node: drain state %s: %w", File, err)
	}
	if !st.Draining || d.Mesh == nil {
		return dr, nil
	}
	dr.st = st
	dr.apply(true)
	d.Log.Warn("node drains (since before the restart): new SMTP sessions are refused", "since", st.Since.Format(time.RFC3339))
	return dr, nil
}

// Drain takes the node out of service: saved first, so that a restart
// keeps draining, then applied. Draining again changes nothing.
func (dr *Drainer) Drain() error { return dr.set(true) }

// Undrain returns the node to service.
func (dr *Drainer) Undrain() error { return dr.set(false) }

func (dr *Drainer) set(on bool) error {
	if dr.d.Mesh == nil {
		return errors.New("node: drain: a standalone node has no member to hand its mail to")
	}
	dr.mu.Lock()
	defer dr.mu.Unlock()
	if dr.st.Draining == on {
		return nil
	}
	st := state{Draining: on}
	if on {
		st.Since = dr.d.Now().UTC()
	}
	if err := save(filepath.Join(dr.d.DataDir, File), st); err != nil {
		return err
	}
	dr.st = st
	dr.empty = time.Time{}
	dr.apply(on)
	if on {
		dr.d.Log.Warn("node drains: new SMTP sessions are refused and queued mail goes to the other members of the routing group")
	} else {
		dr.d.Log.Warn("node drain ended: back in service")
	}
	return nil
}

func (dr *Drainer) apply(on bool) {
	for _, s := range dr.d.Servers {
		s.RefuseNew(on)
	}
	dr.d.Mesh.SetDraining(on)
	dr.d.Retry()
}

// Draining reports whether the node drains.
func (dr *Drainer) Draining() bool {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	return dr.st.Draining
}

// DrainStatus is the answer of GET /api/node/drain.
func (dr *Drainer) DrainStatus() adminapi.DrainStatus {
	dr.mu.Lock()
	st := dr.st
	dr.mu.Unlock()
	out := adminapi.DrainStatus{Node: dr.d.Node, RG: dr.d.RG, Draining: st.Draining, Members: []string{}}
	if st.Draining {
		since := st.Since
		out.Since = &since
	}
	// Transactions before the queue: a message acknowledged by a
	// transaction that ended before this count is in the queue read after.
	for _, s := range dr.d.Servers {
		out.Transactions += s.Transactions()
	}
	out.Queued = dr.d.Queue.Stats().Messages
	held := true
	if msgs, err := dr.d.Queue.List(queue.Filter{Held: &held}); err == nil {
		out.Held = len(msgs)
	}
	out.Shadows = dr.d.Queue.ShadowStats().Count
	if dr.d.Mesh != nil {
		out.DrainingMembers = dr.d.Mesh.DrainingMembers()
		for _, m := range dr.d.Mesh.View().Members {
			if m.Name != dr.d.Node && !slices.Contains(out.DrainingMembers, m.Name) {
				out.Members = append(out.Members, m.Name)
			}
		}
		slices.Sort(out.Members)
	}
	empty := st.Draining && out.Queued == 0 && out.Transactions == 0
	out.Done = empty && dr.settled(empty)
	return out
}

// settled reports whether the node has held no mail for long enough that
// the nodes which handed it copies have asked it about them and dropped
// their shadows (docs/shadow.md): two mesh.shadow_check rounds when shadows
// are on. Were the node stopped before that, they would resubmit those
// copies after mesh.shadow_timeout: traffic, and copies the final node's
// duplicate detection has to catch.
func (dr *Drainer) settled(empty bool) bool {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	if !empty {
		dr.empty = time.Time{}
		return false
	}
	now := dr.d.Now()
	if dr.empty.IsZero() {
		dr.empty = now
	}
	if !dr.d.Shadows {
		return true
	}
	return now.Sub(dr.empty) >= 2*dr.d.ShadowCheck
}

// Gauge is meshd_node_draining.
func (dr *Drainer) Gauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshd_node_draining",
		Help: "1 while the node drains (meshctl node drain): it refuses new SMTP sessions and hands its queue to the other members of its routing group.",
	}, func() float64 {
		if dr.Draining() {
			return 1
		}
		return 0
	})
}

// save writes the state durably: a synced temporary file renamed over the
// old one, and the directory synced.
func save(path string, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("node: save drain state: %w", err)
	}
	return nil
}
