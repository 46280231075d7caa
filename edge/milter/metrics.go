package milter

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the chain's Prometheus metrics (meshd_filter_*).
type Metrics struct {
	results  *prometheus.CounterVec
	rcpts    *prometheus.CounterVec
	failures *prometheus.CounterVec
	edits    *prometheus.CounterVec
	messages *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics makes the metrics; register Collectors on a registry.
func NewMetrics() *Metrics {
	return &Metrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_filter_milter_results_total", Help: "Answers of each milter, by milter and result (continue, accept, reject, tempfail, discard, quarantine, failed).",
		}, []string{"milter", "result"}),
		rcpts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_filter_milter_rcpt_results_total", Help: "Answers of each milter to a recipient at RCPT time (phase rcpt), by milter and result (continue, accept, reject, tempfail, discard, failed).",
		}, []string{"milter", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_filter_milter_failures_total", Help: "Milter sessions that failed (unreachable, timed out, protocol error); the milter's on_failure was applied.",
		}, []string{"milter"}),
		edits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_filter_milter_edits_total", Help: "Changes milters made to messages, by milter and kind (add_header, change_header, delete_header, insert_header, add_rcpt, delete_rcpt, refuse_rcpt, change_from, replace_body).",
		}, []string{"milter", "kind"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_filter_messages_total", Help: "Messages checked by the filter chain, by verdict (accept, reject, tempfail, discard, quarantine).",
		}, []string{"verdict"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meshd_filter_milter_duration_seconds", Help: "Time a milter took for one message.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30},
		}, []string{"milter"}),
	}
}

// Collectors lists the metrics for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.results, m.rcpts, m.failures, m.edits, m.messages, m.duration}
}

func (m *Metrics) observe(milter string, s Step) {
	if m == nil {
		return
	}
	m.results.WithLabelValues(milter, s.Result).Inc()
	if s.Result == "failed" {
		m.failures.WithLabelValues(milter).Inc()
	}
	for _, e := range s.Edits {
		kind, _, _ := cutSpace(e)
		m.edits.WithLabelValues(milter, kind).Inc()
	}
	m.duration.WithLabelValues(milter).Observe(s.Duration.Seconds())
}

// observeRcpt counts a RCPT-time answer (its result, failures and
// duration; a RCPT check makes no edits).
func (m *Metrics) observeRcpt(milter string, s Step) {
	if m == nil {
		return
	}
	m.rcpts.WithLabelValues(milter, s.Result).Inc()
	if s.Result == "failed" {
		m.failures.WithLabelValues(milter).Inc()
	}
	m.duration.WithLabelValues(milter).Observe(s.Duration.Seconds())
}

func (m *Metrics) verdict(a Action) {
	if m != nil {
		m.messages.WithLabelValues(a.String()).Inc()
	}
}

func cutSpace(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
