package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/delivery"
	"github.com/meshd/meshd/node/membership"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/routing"
)

// meshMetrics are the mesh-side metrics: counters fed by WatchLinkState,
// and a collector that reads the mesh, the LSDB and the queue per next
// hop at scrape time.
type meshMetrics struct {
	digestChanges  prometheus.Counter
	convergence    prometheus.Histogram
	transitions    *prometheus.CounterVec // connector up/down transitions seen in records, by rg and connector
	tables         prometheus.Counter     // routing tables published (generation changes)
	spf            prometheus.Histogram   // computation time of the tables used
	adminOverrides *prometheus.CounterVec // operator connector overrides, by action
	inDoubt        *prometheus.CounterVec // hops in doubt, by result (node/delivery/hopdoubt.go)
}

func newMeshMetrics() *meshMetrics {
	return &meshMetrics{
		digestChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_linkstate_digest_changes_total", Help: "Changes of the LSDB digest (a record installed, replaced or expired).",
		}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshd_linkstate_convergence_seconds", Help: "Time from a record's IssuedAt (whole seconds on the wire) to its install on this node.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300},
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_connector_transitions_total", Help: "Connector up/down transitions seen in installed records, by routing group and connector.",
		}, []string{"rg", "connector"}),
		tables: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_routing_tables_total", Help: "Routing tables computed (SPF runs that published a new table) since start.",
		}),
		spf: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshd_routing_spf_duration_seconds", Help: "Time to compute a routing table (SPF over the LSDB and the address-space index), for the tables this node used; when several are computed in a burst only the last is observed.",
			Buckets: []float64{0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25},
		}),
		adminOverrides: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_connector_admin_overrides_total", Help: "Operator connector overrides received on this node's admin API, by action (up, down, drain).",
		}, []string{"action"}),
		inDoubt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_mesh_in_doubt_total",
			Help: "Mesh hops in doubt (copy sent in full, no reply) by result: recorded (a hop fell in doubt), held (the node had the copy: hop done), unknown (it had not: sent along the current routes), unanswered (asked, no answer yet), timeout (no answer within mesh.in_doubt_timeout: sent elsewhere, a possible duplicate).",
		}, []string{"result"}),
	}
}

// Queue is what the collector reads of the queue.
type Queue interface {
	Stats() queue.Stats
}

// NextHops groups the pending recipients by next hop (delivery.Deliverer).
type NextHops interface {
	NextHops() []delivery.HopQueue
}

// LinkState is the mesh side's link state and routes (node/mesh.Mesh).
type LinkState interface {
	LSDB() *linkstate.LSDB
	Routes() *routing.Table
}

// Mesh is what the collector reads of the mesh side (node/mesh.Mesh).
type Mesh interface {
	LinkState
	View() membership.View
	AdminStates() map[string]string
	Penalties() map[string]float64
	Stats() mesh.Stats
}

// Sources are what the collector reads at scrape time.
type Sources struct {
	Node, RG string // this node and its routing group
	Now      func() time.Time
	Queue    Queue
	NextHops NextHops
	Mesh     Mesh // nil for a standalone node
}

// RegisterSources registers the collector that reads the queue, the
// next hops and the mesh at scrape time.
func (m *Node) RegisterSources(s Sources) {
	_ = m.reg.Register(meshCollector{s})
}

// meshCollector reads the node's parts at scrape time.
type meshCollector struct{ s Sources }

var (
	descHopMsgs    = prometheus.NewDesc("meshd_queue_next_hop_messages", "Messages with pending recipients, by the next hop the current routes send them to.", []string{"next_hop"}, nil)
	descHopAge     = prometheus.NewDesc("meshd_queue_next_hop_oldest_age_seconds", "Age of the oldest message waiting for each next hop.", []string{"next_hop"}, nil)
	descOldest     = prometheus.NewDesc("meshd_queue_oldest_age_seconds", "Age of the oldest message in the queue (0 when empty).", nil, nil)
	descRecords    = prometheus.NewDesc("meshd_linkstate_records", "Live link-state records in the LSDB.", nil, nil)
	descLSDBBytes  = prometheus.NewDesc("meshd_linkstate_size_bytes", "Encoded size of the records in the LSDB.", nil, nil)
	descRecordAge  = prometheus.NewDesc("meshd_linkstate_record_age_seconds", "Age of each routing group's record (since IssuedAt).", []string{"rg"}, nil)
	descMaster     = prometheus.NewDesc("meshd_mesh_is_master", "1 when this node is its routing group's master.", []string{"rg"}, nil)
	descMasterOK   = prometheus.NewDesc("meshd_mesh_master_known", "1 when the gossip view of this node's routing group has a master.", []string{"rg"}, nil)
	descMembers    = prometheus.NewDesc("meshd_mesh_members", "Live members in the gossip view of this node's routing group.", []string{"rg"}, nil)
	descUnverified = prometheus.NewDesc("meshd_mesh_members_unverified", "Live gossip members of this node's routing group that have not proven their name with a node certificate of the group (they count for nothing).", []string{"rg"}, nil)
	descConnUp     = prometheus.NewDesc("meshd_connector_up", "1 when the connector is advertised up, by routing group and connector.", []string{"rg", "connector"}, nil)
	descConnSupp   = prometheus.NewDesc("meshd_connector_suppressed", "1 when flap damping suppresses the connector.", []string{"rg", "connector"}, nil)
	descConnAdmin  = prometheus.NewDesc("meshd_connector_admin_down", "1 when an operator override holds one of this routing group's connectors down or drained.", []string{"connector", "state"}, nil)
	descPenalty    = prometheus.NewDesc("meshd_connector_damping_penalty", "Flap-damping penalty of this routing group's connectors (tracked on the master).", []string{"connector"}, nil)
	descXSessions  = prometheus.NewDesc("meshd_xlink_sessions_total", "X-LINK2STATE sessions opened to other routing groups.", nil, nil)
	descXFailures  = prometheus.NewDesc("meshd_xlink_failures_total", "X-LINK2STATE sessions that failed.", nil, nil)
	descXNoExt     = prometheus.NewDesc("meshd_xlink_peers_without_extension_total", "Peers that did not offer X-LINK2STATE in EHLO.", nil, nil)
	descOriginated = prometheus.NewDesc("meshd_linkstate_originated_records_total", "Records this node originated as master.", nil, nil)
	descInstalled  = prometheus.NewDesc("meshd_linkstate_installed_records_total", "Records installed from elsewhere.", nil, nil)
	descObserved   = prometheus.NewDesc("meshd_connector_observations_total", "Bridgehead pair transitions this node observed.", nil, nil)
	descMasterChg  = prometheus.NewDesc("meshd_mesh_master_changes_total", "Master changes seen in this node's routing group.", nil, nil)
	descGeneration = prometheus.NewDesc("meshd_routing_table_generation", "Generation of the current routing table.", nil, nil)
)

func (c meshCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHopMsgs, descHopAge, descOldest, descRecords, descLSDBBytes, descRecordAge, descMaster,
		descMasterOK, descMembers, descUnverified, descConnUp, descConnSupp, descConnAdmin, descPenalty, descXSessions, descXFailures, descXNoExt,
		descOriginated, descInstalled, descObserved, descMasterChg, descGeneration} {
		ch <- d
	}
}

func (c meshCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.s
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	if n.Queue != nil {
		oldest := 0.0
		if st := n.Queue.Stats(); !st.Oldest.IsZero() {
			oldest = n.Now().Sub(st.Oldest).Seconds()
		}
		gauge(descOldest, oldest)
		for _, q := range n.NextHops.NextHops() {
			gauge(descHopMsgs, float64(q.Messages), q.Hop)
			gauge(descHopAge, q.Oldest.Seconds(), q.Hop)
		}
	}
	m := n.Mesh
	if m == nil {
		return
	}
	snap := m.LSDB().Snapshot()
	now := n.Now()
	size := 0
	recs := snap.Records()
	gauge(descRecords, float64(len(recs)))
	for _, r := range recs {
		if b, ok := snap.Encoded(r.RG); ok {
			size += len(b)
		}
		gauge(descRecordAge, now.Sub(r.IssuedAt).Seconds(), r.RG)
		for i := range r.Connectors {
			k := &r.Connectors[i]
			gauge(descConnUp, b2f(k.Up()), r.RG, k.ID)
			gauge(descConnSupp, b2f(k.Suppressed), r.RG, k.ID)
		}
	}
	gauge(descLSDBBytes, float64(size))
	v := m.View()
	rg := n.RG
	gauge(descMaster, b2f(v.Master == n.Node), rg)
	gauge(descMasterOK, b2f(v.Master != ""), rg)
	gauge(descMembers, float64(len(v.Members)), rg)
	gauge(descUnverified, float64(len(v.Unverified)), rg)
	for id, st := range m.AdminStates() {
		gauge(descConnAdmin, 1, id, st)
	}
	for id, p := range m.Penalties() {
		gauge(descPenalty, p, id)
	}
	st := m.Stats()
	counter(descXSessions, st.SyncSessions)
	counter(descXFailures, st.SyncFailures)
	counter(descXNoExt, st.NoExtension)
	counter(descOriginated, st.Originated)
	counter(descInstalled, st.Installed)
	counter(descObserved, st.Observations)
	counter(descMasterChg, st.MasterChanges)
	if t := m.Routes(); t != nil {
		gauge(descGeneration, float64(t.Generation()))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// WatchLinkState feeds the event metrics: digest changes, convergence of
// every installed record, connector transitions and routing tables. It
// runs until ctx is done.
func (m *Node) WatchLinkState(ctx context.Context, ls LinkState, clock func() time.Time) error {
	mm := m.mesh
	db := ls.LSDB()
	sub := db.Subscribe()
	defer sub.Close()
	lastDigest := db.Snapshot().Digest()
	up := map[linkstate.ConnectorKey]bool{}
	var gen uint64
	if t := ls.Routes(); t != nil {
		gen = t.Generation()
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-sub.C():
			changed := sub.Changes()
			snap := db.Snapshot()
			now := clock()
			if d := snap.Digest(); d != lastDigest {
				lastDigest = d
				mm.digestChanges.Inc()
			}
			for _, rg := range changed {
				r, ok := snap.Get(rg)
				if !ok || r.Tombstone {
					continue
				}
				mm.convergence.Observe(max(now.Sub(r.IssuedAt), 0).Seconds())
				for i := range r.Connectors {
					k := &r.Connectors[i]
					key := linkstate.ConnectorKey{From: rg, ID: k.ID}
					if was, seen := up[key]; seen && was != k.Up() {
						mm.transitions.WithLabelValues(rg, k.ID).Inc()
					}
					up[key] = k.Up()
				}
			}
		}
		if t := ls.Routes(); t != nil && t.Generation() != gen {
			mm.tables.Add(float64(max(int64(t.Generation())-int64(gen), 1)))
			mm.spf.Observe(t.ComputeDuration().Seconds())
			gen = t.Generation()
		}
	}
}
