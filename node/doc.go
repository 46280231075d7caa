// Package node wires one meshd node together and owns its lifecycle: the
// SMTP and submission listeners (package smtp), the durable queue (package
// queue), the delivery scheduler and the admin HTTP/JSON API.
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
//	client ──SMTP──▶ smtp.Server ──Policy.CheckRcpt──▶ relayPolicy (policy.go)
//	                      │ end of DATA
//	                      ▼
//	                 sink.AcceptID (accept.go): mesh ID, strip/believe X-Meshd-* headers,
//	                      │ queue.Enqueue (synced, group-committed) ──▶ 250 / 451 4.3.0
//	                      ▼
//	                 deliverer (deliver.go): Notify/timer ─▶ Due ─▶ group recipients per destination
//	                      │ queue.Attempt (backoff persisted first)
//	                      ▼
//	                 transports (outbound.go): Maildir | LMTP | smarthost | MX (mx.Resolver),
//	                      │ per-destination semaphore, dead-destination cache
//	                      ▼
//	                 queue.Record ─▶ failure/delay DSN (notify.go, smtp/dsn) queued with From <>
//
// Relay is denied by default: a recipient outside local_domains is accepted
// only from an authenticated submission client, a relay.mesh_peers address
// or a relay.allow_networks address (550 5.7.1 otherwise).
//
// Local delivery is exactly once across crashes: every Maildir copy carries
// X-Meshd-ID, and a recipient attempted by an earlier process but still
// pending is looked up in its mailbox before it is written again
// (indoubt.go).
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
// On listen.admin (admin.go): GET /api/status, GET /api/queue,
// GET /api/queue/{id}, POST /api/queue/{id}/{retry|hold|release},
// DELETE /api/queue/{id} (JSON; errors as {"error": ...} with 400/404/500),
// and GET /metrics (Prometheus, a registry per node).
package node
