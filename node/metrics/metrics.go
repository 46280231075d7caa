package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
	"github.com/meshd/meshd/version"
)

// Node is the Prometheus metrics of one node, on a registry of its own so
// that several nodes can run in one process (tests, meshd demo).
type Node struct {
	reg          *prometheus.Registry
	accepted     *prometheus.CounterVec // by source
	rejectedFull prometheus.Counter
	collisions   prometheus.Counter     // copy ID collisions (accept.go)
	delivered    *prometheus.CounterVec // by destination kind
	deferred     *prometheus.CounterVec
	bounced      *prometheus.CounterVec
	expired      prometheus.Counter
	dsnSent      *prometheus.CounterVec // by kind: failure, delay, success
	replies      *prometheus.CounterVec // SMTP replies sent, by code
	deadSkips    prometheus.Counter
	replyLost    *prometheus.CounterVec // transactions outside the mesh with no reply to the final dot, by kind
	adminRefused *prometheus.CounterVec // admin API requests refused, by reason
	bareLineEnds *prometheus.CounterVec // messages with bare CR/LF, by listener and action
	dataTooSlow  *prometheus.CounterVec // transfers cut by limits.data_total_timeout, by listener
	mesh         *meshMetrics           // mesh.go
	shadow       *shadowMetrics         // shadow.go
}

// New builds the metrics; queueStats reads the queue's size at scrape time.
func New(queueStats func() (messages int, bytes int64)) *Node {
	m := &Node{
		reg: prometheus.NewRegistry(),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_smtp_accepted_messages_total", Help: "Messages accepted (250) and queued, by source.",
		}, []string{"source"}),
		collisions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_dedup_id_collisions_total", Help: "Messages from mesh peers whose copy ID was already taken by other content: queued as new messages under an ID of their own, never dropped.",
		}),
		rejectedFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_smtp_queue_full_rejections_total", Help: "Messages refused with 451 4.3.0 because the queue was over its bound.",
		}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_delivery_delivered_recipients_total", Help: "Recipients delivered, by destination kind.",
		}, []string{"kind"}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_delivery_deferred_recipients_total", Help: "Recipient delivery attempts that failed temporarily, by destination kind.",
		}, []string{"kind"}),
		bounced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_delivery_bounced_recipients_total", Help: "Recipients that failed permanently, by destination kind.",
		}, []string{"kind"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_delivery_expired_recipients_total", Help: "Recipients given up after queue.lifetime.",
		}),
		dsnSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_dsn_generated_total", Help: "Delivery status notifications queued, by kind (failure, delay, success, relayed).",
		}, []string{"kind"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_smtp_replies_total", Help: "SMTP replies sent to clients (every reply of the dialogue, greeting and 421s included; X-LINK2STATE's excepted), by listener (smtp, submission, mesh) and code.",
		}, []string{"listener", "code"}),
		deadSkips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_delivery_dead_destination_skips_total", Help: "Attempts deferred without dialling because the destination was recently unreachable.",
		}),
		replyLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_delivery_reply_lost_total", Help: "Transactions outside the mesh (smarthost, MX, LMTP) sent in full whose reply to the final dot never came: the retry may deliver a second copy (RFC 5321 §6.1), by destination kind.",
		}, []string{"kind"}),
		dataTooSlow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_smtp_data_too_slow_total", Help: "DATA/BDAT transfers cut with 421 4.4.2 because they outlasted limits.data_total_timeout, by listener.",
		}, []string{"listener"}),
		bareLineEnds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_smtp_bare_line_end_messages_total", Help: "Messages whose content held a bare CR or LF, by listener and action (normalize: stored with CRLF; reject: refused 550 5.6.0).",
		}, []string{"listener", "action"}),
		adminRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_admin_refused_requests_total", Help: "Admin API requests refused, by reason (host, origin, content_type, token).",
		}, []string{"reason"}),
	}
	queueMsgs := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshd_queue_messages", Help: "Messages in the queue.",
	}, func() float64 { n, _ := queueStats(); return float64(n) })
	queueBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshd_queue_size_bytes", Help: "Bytes of message bodies in the queue.",
	}, func() float64 { _, b := queueStats(); return float64(b) })
	bi := version.Get()
	buildInfo := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshd_build_info", Help: "Always 1; the labels say which build of meshd runs (version, commit, build date, Go version).",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "date": bi.Date, "goversion": bi.GoVersion},
	}, func() float64 { return 1 })
	m.mesh = newMeshMetrics()
	m.reg.MustRegister(m.mesh.digestChanges, m.mesh.convergence, m.mesh.transitions, m.mesh.tables, m.mesh.spf, m.mesh.adminOverrides, m.mesh.inDoubt)
	m.reg.MustRegister(m.collisions)
	m.reg.MustRegister(m.accepted, m.rejectedFull, m.delivered, m.deferred, m.bounced, m.expired,
		m.dsnSent, m.replies, m.deadSkips, m.replyLost, m.adminRefused, m.bareLineEnds, m.dataTooSlow, queueMsgs, queueBytes, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the node's registry (GET /metrics); the node's other parts
// register their own collectors there.
func (m *Node) Registry() *prometheus.Registry { return m.reg }

// Accepted counts a message queued from source (smtp, submission, mesh).
func (m *Node) Accepted(source string) { m.accepted.WithLabelValues(source).Inc() }

// QueueFull counts a message refused because the queue was over its bound.
func (m *Node) QueueFull() { m.rejectedFull.Inc() }

// Collision counts a copy ID taken by other content.
func (m *Node) Collision() { m.collisions.Inc() }

// AdminRefused counts an admin API request refused (adminapi.GuardConfig.OnRefused).
func (m *Node) AdminRefused(reason string) { m.adminRefused.WithLabelValues(reason).Inc() }

// ConnectorAdmin counts an operator connector override (admin.Deps.OnConnectorAdmin).
func (m *Node) ConnectorAdmin(action string) { m.mesh.adminOverrides.WithLabelValues(action).Inc() }

// CountBare returns the smtp.ServerConfig.OnBareLineEnd of one listener.
func (m *Node) CountBare(listener string) func(smtp.BarePolicy) {
	return func(p smtp.BarePolicy) { m.bareLineEnds.WithLabelValues(listener, string(p)).Inc() }
}

// CountSlow returns the smtp.ServerConfig.OnDataTooSlow of one listener.
func (m *Node) CountSlow(listener string) func() {
	return func() { m.dataTooSlow.WithLabelValues(listener).Inc() }
}

// CountReply returns the smtp.ServerConfig.OnReply of one listener: it
// counts meshd_smtp_replies_total{listener, code}.
func (m *Node) CountReply(listener string) func(code int) {
	return func(code int) { m.replies.WithLabelValues(listener, strconv.Itoa(code)).Inc() }
}

// RegisterChannel exports the port-691 listener's refusal counters.
func (m *Node) RegisterChannel(stats func() channel.Stats) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "meshd_linkstate_conns_accepted_total",
			Help: "Port-691 connections served.",
		}, func() float64 { return float64(stats().ConnsAccepted) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "meshd_linkstate_conns_refused_total",
			Help: "Port-691 connections closed at once: over the listener's or one address's pre-HELLO cap.",
		}, func() float64 { return float64(stats().ConnsRefused) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "meshd_linkstate_observations_skew_total",
			Help: "Member observations dropped for a time too far ahead of this node's clock.",
		}, func() float64 { return float64(stats().ObservationsSkew) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "meshd_linkstate_sessions_replaced_total",
			Help: "Member sessions the master closed for a newer session of the same node (a restart, or two holders of one node's key).",
		}, func() float64 { return float64(stats().SessionsReplaced) }),
	)
}

// The node's metrics count delivery's outcomes (delivery.Metrics).

// Outcome counts one recipient delivered, deferred or bounced.
func (m *Node) Outcome(kind string, o queue.Outcome) {
	switch o {
	case queue.Delivered:
		m.delivered.WithLabelValues(kind).Inc()
	case queue.TempFail:
		m.deferred.WithLabelValues(kind).Inc()
	case queue.PermFail:
		m.bounced.WithLabelValues(kind).Inc()
	}
}

// Expired counts recipients given up after queue.lifetime.
func (m *Node) Expired(rcpts int) { m.expired.Add(float64(rcpts)) }

// DSNQueued counts a DSN queued, by kind.
func (m *Node) DSNQueued(kind string) { m.dsnSent.WithLabelValues(kind).Inc() }

// DeadSkip counts an attempt deferred without dialling.
func (m *Node) DeadSkip() { m.deadSkips.Inc() }

// InDoubt counts a hop in doubt, by result.
func (m *Node) InDoubt(result string) { m.mesh.inDoubt.WithLabelValues(result).Inc() }

// ReplyLost counts a transaction outside the mesh whose reply never came.
func (m *Node) ReplyLost(kind string) { m.replyLost.WithLabelValues(kind).Inc() }
