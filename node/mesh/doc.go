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
// Organisation domains outlive records (owned.go): the address spaces of
// every group's last record, and the domains configuration declares, are
// kept (in Config.OwnedFile) and handed to the router as routing.Owned, so
// mail for a group whose record is absent waits instead of matching a
// broader external connector. A tombstone (RemoveRG, decommission.go) or
// the group's leaving the configuration marks it removed: its mail fails.
// Likewise the nodes records listed stay known (KnowsNode) for a record
// TTL after the records leave them out (listed.go, kept in
// Config.ListedFile across restarts).
//
// A new master carries the pair states it knows (its own observations,
// its group's last record) into its first record, and a connector whose
// source bridgeheads have all left the group is advertised down.
//
// Membership is bound to certificates: a gossip member counts only after
// verifyMember proved, by a mutual-TLS handshake with its advertised
// port-691 address, that its certificate names it in this routing group
// (membership.Config.Verify). What a member reports to the master is held
// per port-691 session and ends mesh.observation_lease after the session
// (observations.go). The port-691 server asks the mesh everything through
// one channel.ServerDelegate (delegate.go).
//
// Everything that changes master state runs on one goroutine (run); the
// callbacks of memberlist, the channel and the interposer only post to it
// or touch the LSDB, which is safe for concurrent use.
package mesh
