// Package membership is a routing group's gossip pool and its routing
// group master election.
//
// Every node of a routing group joins one hashicorp/memberlist pool (LAN
// settings, encrypted when a key is configured, labelled with the routing
// group so that pools of different groups never merge). Each node publishes
// a small Meta record (routing group, SMTP and link-state addresses,
// election priority) as its memberlist metadata.
//
// Holding the gossip key is not membership. With Config.Verify set (as
// every node with an identity runs), a gossip member counts only after it
// has proven its name: a mutual-TLS handshake with the port-691 address
// it advertises must show a verified certificate naming meshd://RG/NAME
// for its own gossip name and this routing group (verify.go). Until then
// it is in View.Unverified: never master, never in the group's record, so
// never handed mail or observations, and shown as unverified by meshctl
// members and the status page. A proof lasts until the certificate it
// was made with expires, and is made again every Config.Reverify: a
// member whose certificate expired or is no longer trusted stops counting
// although it stays in the pool.
//
// The master of a routing group is the verified live member ranked first by
// (not draining first, priority descending, node name ascending). Every member computes the
// same answer from the same member list, so no election messages are
// exchanged; a change of master is seen by each member as soon as its
// memberlist view changes. Pool.Events delivers a View after every change:
// the sorted live members and the master. What a new master does with
// that (bump the epoch after collecting observations) is the node's
// business, not this package's.
//
// A node restarted on a new gossip address rejoins at once: the others let
// a dead member's name take a new address (memberlist's
// DeadNodeReclaimTime), and it seeds from the members it saw last
// (Config.PeersFile, peers.go) besides its configured seeds.
package membership
