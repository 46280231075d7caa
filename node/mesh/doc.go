// Package mesh is the link-state side of a meshd node: it joins the
// routing group's gossip pool, keeps the LSDB, runs the port-691 channel
// (as master or member), originates the group's record while master,
// detects bridgehead failures, exchanges link state with other groups
// over X-LINK2STATE, and keeps the routing table current.
//
// Data flow:
//
//	prober / forwarding results ──► observations ──► master (channel or local)
//	master: observations + view + config ──► signed record ──► LSDB
//	LSDB change ──► channel push to members, X-LINK2STATE to other groups,
//	                router update ──► routing.Table (OnRoutes)
//	records from members (handed) / X-LINK2STATE / master ──► LSDB
//
// Everything that changes master state runs on one goroutine (run); the
// callbacks of memberlist, the channel and the interposer only post to it
// or touch the LSDB, which is safe for concurrent use.
package mesh
