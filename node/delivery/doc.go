// Package delivery owns the delivery of queued mail: the scheduler that
// takes due messages from the queue, the routing of each recipient to a
// destination, the transports that carry a copy there, the exactly-once
// check of local copies after a crash, and the delivery status
// notifications (RFC 3464) a sender asked for.
//
//	queue.Notify / timer ─▶ Deliverer.Run ─▶ queue.DueFunc
//	      │ one worker per message (≤ 16 × outbound.max_concurrent)
//	      ▼
//	route (transports.go): local domain ─▶ Maildir | LMTP
//	      │                mesh (meshroute.go, Mesh.Routes) ─▶ next hop | exit | no route
//	      │                standalone ─▶ smarthost | MX (MXResolver)
//	      ▼
//	attempt: destination slot ─▶ queue.Attempt (backoff persisted first)
//	      │    ─▶ send (per-destination semaphore, dead-destination cache)
//	      │    ─▶ Tracker.Attempted, Metrics.Outcome
//	      ▼
//	failure / success / delay DSN (dsn.go, smtp/dsn) queued with From <>
//	      │
//	      ▼
//	queue.RecordMessage | queue.RecordHandOff (mesh hop: shadow kept)
//
// A mesh hop's copy carries the mesh's identity headers (meshid): its
// copy ID derives from the origin ID and the recipients, so a resend is a
// duplicate at the next hop. A local copy carries X-Meshd-ID, and a
// recipient attempted by an earlier process but still pending is looked
// up in its mailbox before it is written again (indoubt.go).
//
// The package knows nothing of the node that runs it: what it needs is
// declared in deps.go as small interfaces (Mesh, Tracker, Metrics,
// LocalDomains, MXResolver) and a clock, passed in Deps.
package delivery
