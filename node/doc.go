// Package node wires one meshd node together and owns its lifecycle: the
// SMTP and submission listeners (package smtp), the durable queue (package
// queue), the delivery scheduler and the admin HTTP/JSON API. Each concern
// lives in a package of its own under node/; this one builds them, hands
// each the others' parts through the small interfaces it declares, and
// starts and stops them.
//
// # Configuration
//
// Package config holds the YAML file of one node (docs/config.md documents
// every key): config.Default is the only place defaults live, config.Parse
// and config.Load decode over it, reject unknown keys and wrongly typed
// values with the dotted key and line, and Validate checks every value,
// naming the key: "config: limits.max_recipients: must be 1..10000, got 0".
//
// # Mail path
//
//	client ──SMTP──▶ smtp.Server ──Policy.CheckRcpt──▶ edge.Inbound.Policy ─▶ relay.Policy
//	                      │ end of DATA
//	                      ▼
//	                 accept.Sink (node/accept): mesh ID (meshid), strip/believe
//	                      │ X-Meshd-* (header), Edge.Screen (node/edge: milters,
//	                      │ Authentication-Results); origin ID and Message-ID read once
//	                      │ into queue.Envelope; queue.Enqueue (synced) ──▶ 250 / 451 4.3.0
//	                      ▼
//	                 delivery.Deliverer (node/delivery): due messages, routes
//	                      │ (Maildir | LMTP | smarthost | MX | mesh hop), DSNs
//	                      ▼
//	                 tracking.Log (node/tracking): one JSON line per event
//
// Relay is denied by default: a recipient outside local_domains is accepted
// only from an authenticated submission client, a relay.mesh_peers address
// or a relay.allow_networks address (550 5.7.1 otherwise).
//
// # Wiring
//
// The packages under node/ know nothing of this one: each declares, where
// it is used, the small interfaces it needs (delivery.Deps: Mesh, Tracker,
// Metrics, LocalDomains, a clock; admin.Deps: Delivery, Mesh, Tracker;
// accept.Deps: Queue, Tracker, Metrics, Edge; identity: Mesh, Org,
// Addresses; metrics.Sources: Queue, NextHops, Mesh; org.API: Mesh), and
// New passes the node's parts in:
//
//	   ┌──────────────────── Node (node.go) ────────────────────┐
//	   │ queue.Queue  relay.Policy  metrics.Node  identity.Node  │
//	   │ accept.Sink  edge.Inbound/Signer  org.Docs  tracking.Log │
//	   └──┬──────────┬──────────┬──────────┬────────────────────┘
//	      ▼          ▼          ▼          ▼
//	node/delivery  node/tracking  node/admin  node/mesh
//	                     ▲   (Finder)   │ (status page: node/status,
//	                     └──────────────┘  JSON: node/adminapi)
//
// What stays here is wiring and lifecycle: New and Start/Close (node.go),
// the mesh side's listeners (mesh.go), the submission listeners
// (submission.go), the admin API's assembly (admin.go), Reload
// (reload.go) and a new organisation document applied live (org.go). The
// submission authenticator is node/passwd's, the drain node/drain's.
//
// # Lifecycle
//
// New opens the queue and binds every listener (addresses are known at
// once, port 0 works); Start serves; Close stops listeners, cancels the
// scheduler, waits for every goroutine (errgroup) and closes the queue.
// Options inject the clock, the outbound dialer, the MX resolver and the
// outbound TLS config.
//
// # Admin API
//
// On listen.admin: package admin (GET /api/status, the queue, reload, the
// mesh, tracking, the status page and GET /metrics, Prometheus, a registry
// per node) behind adminapi.Guard; the JSON documents are package adminapi's.
package node
