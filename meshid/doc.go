// Package meshid is the mesh's message-identity vocabulary, written once:
// the format of a mesh ID, how a new one is drawn and how derived ones
// (a copy's, a collision's, a DSN's) are computed, the names of the header
// fields that carry identity and trace between nodes, and the trace
// itself (the routing groups a message has left).
//
//	smtp session ── New ──▶ "250 queued as <id>"
//	      │ end of DATA
//	      ▼
//	node accept: Valid(X-Meshd-ID from a mesh peer) ── else the session's ID
//	      │        ParseTrace(X-Meshd-Trace), Visits ≥ MaxVisits ─▶ 554 5.4.6
//	      ▼
//	queue.Enqueue: Valid(envelope ID) ─▶ ErrInvalid otherwise
//	      │
//	      ▼
//	mesh hop: Copy(org key, origin, rcpts) ─▶ X-Meshd-ID, X-Meshd-Origin,
//	          FormatTrace(trace + this group) ─▶ X-Meshd-Trace
//
// Every function is pure: no package state beyond constant tables.
package meshid
