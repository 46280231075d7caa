// Package membership is a routing group's gossip pool and its routing
// group master election.
//
// Every node of a routing group joins one hashicorp/memberlist pool (LAN
// settings, encrypted when a key is configured, labelled with the routing
// group so that pools of different groups never merge). Each node publishes
// a small Meta record (routing group, SMTP and link-state addresses,
// election priority) as its memberlist metadata.
//
// The master of a routing group is the live member ranked first by
// (priority descending, node name ascending). Every member computes the
// same answer from the same member list, so no election messages are
// exchanged; a change of master is seen by each member as soon as its
// memberlist view changes. Pool.Events delivers a View after every change:
// the sorted live members and the master. What a new master does with
// that (bump the epoch after collecting observations) is the node's
// business, not this package's.
package membership
