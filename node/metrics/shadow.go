package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/queue"
)

// shadowMetrics count shadow copies and what became of them, and suspect
// copies' group checks (docs/shadow.md).
type shadowMetrics struct {
	events      *prometheus.CounterVec // released, resubmitted
	groupChecks *prometheus.CounterVec // by result
}

// RegisterShadow adds the shadow metrics: the counters of Shadow and
// GroupCheck, and gauges read at scrape time from stats (the queue's
// shadows) and limit (queue.max_shadow_bytes).
func (m *Node) RegisterShadow(stats func() queue.ShadowStats, limit func() int64) {
	s := &shadowMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_shadow_events_total",
			Help: "Shadow copies that ended, by event: released (the next node reported the copy delivered or handed on), resubmitted (the next node was lost: the copy went back into the queue).",
		}, []string{"event"}),
		groupChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_shadow_group_checks_total",
			Help: "Group checks of suspect copies before final delivery, by result: deliver (no member holds a twin), twin (a member delivered it: not delivered again), wait (a member holds it queued or did not answer), timeout (unsettled past mesh.shadow_timeout: delivered, a possible duplicate), no-group (no other member).",
		}, []string{"result"}),
	}
	m.shadow = s
	m.reg.MustRegister(s.events, s.groupChecks,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshd_shadow_copies", Help: "Shadow copies held for copies handed to other mesh nodes (docs/shadow.md).",
		}, func() float64 { return float64(stats().Count) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshd_shadow_size_bytes", Help: "Bytes the shadow copies take in the queue (bounded by queue.max_shadow_bytes).",
		}, func() float64 { return float64(stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshd_shadow_limit_bytes", Help: "queue.max_shadow_bytes (0: no shadows).",
		}, func() float64 { return float64(limit()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "meshd_shadow_skipped_total", Help: "Hand-offs recorded without a shadow because the shadows were at queue.max_shadow_bytes.",
		}, func() float64 { return float64(stats().Skipped) }),
	)
}

// Shadow counts n shadows that ended with event (delivery.Metrics).
func (m *Node) Shadow(event string, n int) {
	if m.shadow != nil {
		m.shadow.events.WithLabelValues(event).Add(float64(n))
	}
}

// GroupCheck counts one group check of a suspect copy (delivery.Metrics).
func (m *Node) GroupCheck(result string) {
	if m.shadow != nil {
		m.shadow.groupChecks.WithLabelValues(result).Inc()
	}
}
