// Package metrics is a node's Prometheus metrics (names meshd_<area>_<thing>_<unit>),
// on a registry per node so that several nodes run in one process.
//
//	sink (accept) ──Accepted, QueueFull, Collision──┐
//	delivery ──Outcome, Expired, DSNQueued, DeadSkip, InDoubt (delivery.Metrics)──┤
//	smtp.Server ──CountReply, CountBare, CountSlow──┼─▶ Node ─▶ Registry ─▶ GET /metrics
//	admin API ──AdminRefused, ConnectorAdmin────────┤
//	WatchLinkState(LSDB, routes): digest changes,   │
//	  convergence, transitions, SPF runs ───────────┘
//
// Collectors read at scrape time: RegisterConns (connection caps of every
// SMTP listener), RegisterChannel (port-691 refusals), RegisterSources
// (queue age, next hops, the LSDB, the gossip view, connector state and
// the mesh's counters, through the small Queue, NextHops and Mesh
// interfaces). Other parts of the node (identity, organisation document,
// filters, DKIM) register their own collectors on Registry.
package metrics
