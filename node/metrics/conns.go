package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/smtp"
)

// RegisterConns exports the connection caps of the SMTP listeners
// servers returns (by listener name; nil entries skipped), read at scrape
// time.
func (m *Node) RegisterConns(servers func() map[string]*smtp.Server) {
	m.reg.MustRegister(connCollector{servers: servers})
}

// connCollector exports the connection caps of every SMTP listener
// (smtp.ConnStats, limits.max_connections*), read at scrape time.
type connCollector struct {
	servers func() map[string]*smtp.Server // by listener name; nil entries skipped
}

var (
	descConnOpen = prometheus.NewDesc("meshd_smtp_connections", "SMTP connections open now, by listener and kind (public: counted per client IP; peer: authenticated mesh peers, counted per peer; probation: over the per-IP cap, not yet proven a mesh peer).",
		[]string{"listener", "kind"}, nil)
	descConnRefused = prometheus.NewDesc("meshd_smtp_connections_refused_total", "SMTP connections refused or cut by a connection cap, by listener and reason (per_ip: limits.max_connections_per_ip; listener: limits.max_connections; per_peer: limits.max_connections_per_peer; probation: over the per-IP cap and not a mesh peer in time, or it sent MAIL first; draining: the node drains, meshctl node drain).",
		[]string{"listener", "reason"}, nil)
	descConnLimit = prometheus.NewDesc("meshd_smtp_connection_limit", "The connection caps in force, by listener and cap (per_ip, listener, per_peer).",
		[]string{"listener", "cap"}, nil)
)

func (c connCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConnOpen
	ch <- descConnRefused
	ch <- descConnLimit
}

func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	for name, s := range c.servers() {
		if s == nil {
			continue
		}
		st, lim := s.ConnStats(), s.Limits()
		g := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
		cnt := func(v uint64, reason string) {
			ch <- prometheus.MustNewConstMetric(descConnRefused, prometheus.CounterValue, float64(v), name, reason)
		}
		g(descConnOpen, float64(st.Open-st.Peers-st.Probation), name, "public")
		g(descConnOpen, float64(st.Peers), name, "peer")
		g(descConnOpen, float64(st.Probation), name, "probation")
		cnt(st.RefusedPerIP, "per_ip")
		cnt(st.RefusedListener, "listener")
		cnt(st.RefusedPerPeer, "per_peer")
		cnt(st.ProbationCut, "probation")
		cnt(st.RefusedDraining, "draining")
		g(descConnLimit, float64(lim.MaxConnsPerIP), name, "per_ip")
		g(descConnLimit, float64(lim.MaxConns), name, "listener")
		g(descConnLimit, float64(lim.MaxConnsPerPeer), name, "per_peer")
	}
}
