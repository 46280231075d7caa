// Package edge is the node's side of the organisation's edge: where mail
// enters it from outside (Inbound: Authentication-Results, RFC 8601, and
// the milter chain of filters.milters, package edge/milter), where it
// leaves it (Signer: DKIM signatures with the keys of dkim.keys, package
// edge/dkim), and the PROXY protocol in front of listeners behind a load
// balancer (Proxied).
//
//	client ─RCPT─▶ Inbound.Policy: relay policy, then the milters of the rcpt phase
//	       ─DATA─▶ accept.Sink ─Screen─▶ Inbound: Authentication-Results at the top,
//	                                     milter verdict (reject, discard, quarantine,
//	                                     edits, removed recipients), tracking.Filtered
//	                           ─Queued─▶ a failure DSN for the removed recipients (DSNs)
//	delivery (smarthost, MX) ─Sign─▶ Signer ─▶ DKIM-Signature, meshd_dkim_*
//
// Content filters see mail once, on the public SMTP and submission
// listeners, from anyone but an authenticated mesh peer; a mesh hop is
// never signed. A reload replaces the chain (SetMilters) and the keys
// (SetKeys) for what starts after it.
package edge
