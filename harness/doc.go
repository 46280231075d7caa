// Package harness rehearses outages of a meshd mesh before they happen: it
// starts the nodes of a topology in one process on a fault-injectable
// loopback network (harness/netem), plays a timeline of faults and
// traffic, and decides assertions about what the mesh did.
//
// # Scenarios
//
// A Scenario (YAML, see ParseScenario and the library in scenarios/) has
//
//   - a Topology: routing groups (name, domains, nodes with priorities) and
//     directed connectors (cost, source bridgeheads and target nodes; the
//     targets resolve to those nodes' mesh SMTP addresses);
//   - Timers: fast probe, sync and retry timers so a run takes seconds
//     (ttl and refresh shorten record lifetimes so records age out,
//     lifetime the queue's, for failure DSNs);
//   - a Timeline of Steps at offsets from t=0: cut, heal, heal_all,
//     partition, delay (slow link), drop, flap (network faults between node
//     pairs resolved from a connector, two nodes, or two sets of routing
//     groups), crash (kill -9) and restart of a node on its data directory,
//     disk_full and disk_free, send (SMTP traffic at a rate), and
//     remove_rg (decommission a routing group through a node: a tombstone),
//     org (a new organisation document, the topology's groups with the
//     step's connectors, signed by the run's CA and applied at a node:
//     it floods and every node reconfigures live);
//   - Assertions: delivered_exactly_once by a deadline, lsdb_converged by a
//     deadline, route (an RG path seen in a time window),
//     max_advertisements (records originated in a window), convergence
//     (after a named step, within a bound), refused (at least N messages
//     answered other than 250), no_leak (no message for a routing group's
//     domain reached a smarthost behind an external connector), tombstone
//     (every live node holds a group's tombstone by a deadline), bounced
//     (at least N accepted messages got a failure DSN by a deadline).
//
// t=0 is the end of the initial convergence: every node holds every
// group's record, the digests agree and every reachable domain has a route.
//
// # Flow
//
//	RunFile / Run
//	  └─ Options.NewCluster (StartCluster: node.Node per topology node, each on
//	     its own netem.Host; listeners, dialer and gossip transport injected)
//	  └─ settle ─ loop every Options.Poll: due steps → Cluster / Faults,
//	     sample LSDB agreement, advance time-bound assertions
//	  └─ finish: scan every Maildir (Message-ID → copies, DSNs), originations,
//	     convergence per fault, end-of-run assertions → Report
//
// The runner sees the mesh only through the Cluster interface, so its
// logic is tested against a fake; StartCluster is the real binding.
//
// # Measures
//
// A message counts as accepted when the node answered 250. Delivered means
// its Message-ID is in a Maildir of some node; duplicated, there more than
// once (a message twice only at an external receiver, after a reply its
// sender logged as lost, is counted apart: docs/indoubt.md); bounced, a failure DSN for it reached a Maildir instead; lost,
// neither. Convergence after a fault is the time until the live nodes last
// came to agree on an LSDB digest before the next fault (a fault that
// changes nothing in the LSDB has none). Advertisements are the records
// the routing group masters originated (mesh Stats().Originated, summed
// over every incarnation of a node).
//
// A full disk is simulated by a graceful restart of the node with its
// queue bounded at one message and one held ballast message in it: every
// Enqueue then fails with queue.ErrFull (451 4.3.0) while mail already
// queued is delivered. disk_free restarts it without the bound and
// deletes the ballast.
package harness
