// Package netem is the fault-injectable network that multi-node tests and the outage harness run
// meshd nodes on. Every node of one process gets a Host; what a host listens on and dials goes
// over real sockets on loopback, and the Network judges each connection and gossip packet against
// a fault table of the link between the two hosts.
//
// # Model
//
// A Network keeps a registry from listening addresses to hosts: Host.Listen (TCP) and
// Host.GossipTransport (memberlist's UDP+TCP port) register the bound address as the host's, so a
// dial from host A to an address owned by host B is judged against the link (A, B). Addresses
// owned by no host (an external SMTP sink, a DNS server) are only affected by the dialer's own
// crash.
//
// Faults, all changeable at run time and safe for concurrent use:
//
//   - Cut / Heal, CutOneWay, Partition / HealAll, Isolate / Unisolate: a cut link refuses new
//     dials at once (ECONNREFUSED) and resets the established connections between the two hosts,
//     as a link going down would be noticed by both ends. Gossip packets are lost per direction.
//   - Blackhole: silent loss. Dials wait for their context, reads and writes for their deadline;
//     data held meanwhile flows again after Heal, as TCP retransmission would deliver it.
//   - Delay: latency on connect, on every write and on every chunk read, and on gossip packets.
//   - Drop: probability that a new connection is refused, and gossip packet loss. Decisions come
//     from a random source seeded by Options.Seed.
//   - Flap: cut and healed alternately every period, by a goroutine the Network owns.
//   - Crash / Restart: the host's listeners, gossip transports and connections close abruptly
//     (SO_LINGER 0, so peers read a reset), and it cannot dial or listen until Restart. The node
//     restarts its own listeners afterwards, usually on the same addresses.
//
// Faults are applied at the dialing end of a connection (its writes carry the A→B delay and its
// reads the B→A delay), so a round trip over a link with Delay d takes at least 2d. Accepted
// ends are tracked so that Cut and Crash reset them too.
//
// Each link has counters (connections opened, refused, broken; bytes; packets sent and dropped)
// read with Stats or LinkStats, and every fault change is an Event in the log returned by Events,
// for reports. Close stops the flap goroutines and closes every listener, connection and gossip
// transport; memberlist instances should be shut down before it.
//
// # Example
//
//	nw := netem.New(netem.Options{Seed: 42})
//	defer nw.Close()
//	n1, n2 := nw.Host("n1"), nw.Host("n2")
//
//	ln, _ := n2.Listen("tcp", "127.0.0.1:0") // n2's SMTP listener
//	client := smtp.NewClient(smtp.ClientConfig{Dial: n1.DialContext})
//
//	gt, _ := n1.GossipTransport("127.0.0.1:0")
//	cfg := memberlist.DefaultLANConfig()
//	cfg.Transport = gt
//
//	nw.Cut("n1", "n2")          // n1's sessions to n2 are reset, new ones refused
//	nw.Delay("n1", "n3", 50*time.Millisecond)
//	nw.Crash("n2")              // kill -9 as seen from the network
//	nw.Restart("n2")            // n2 may listen again
//	nw.HealAll()
//	for _, ev := range nw.Events() {
//		fmt.Println(ev)
//	}
package netem
