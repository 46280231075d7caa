// Package channel is the link-state channel inside a routing group: the
// TCP protocol spoken on port 691 (configurable) between each member and
// its routing group master.
//
// Every member keeps one connection (TLS when configured) to the master,
// and the master holds one session per member: a newer session of the
// same node closes the older (a restarted member replaces its half-open
// session at once; Stats.SessionsReplaced counts it).
// After a versioned greeting, the master sends the whole LSDB once and
// then only the records that changed (deltas); the member sends its
// observations (bridgehead pair up/down) as soon as it makes them, and
// sends them all again on every new connection, so a new master learns
// the current state of the group from its members. The same listener
// answers a read-only dump of the LSDB for meshctl.
//
// Records travel as opaque byte strings: their encoding and signatures
// belong to package linkstate, and a receiver verifies them there. This
// package only frames, authenticates the peer's role and moves bytes.
//
// Wire format (all integers big-endian), one frame:
//
//	length u32   (of type+payload; at most MaxFrame)
//	type   u8
//	payload
//
// Frame types and payloads:
//
//	1 HELLO    magic "MESHD691", version u16, role u8 (1 member, 2 dump, 3 track),
//	           node str, rg str                        (client → server)
//	2 WELCOME  version u16, node str, rg str          (server → client)
//	3 REFUSE   code u8, text str; then close          (server → client)
//	           code 1 not master (text = master name), 2 bad greeting,
//	           3 unknown peer, 4 wrong routing group, 5 version
//	4 RECORDS  full u8 (1 = whole LSDB, 0 = delta), count u32,
//	           count × (len u32, bytes)               (server → client;
//	           also member → master: records the member learned over
//	           X-LINK2STATE, with full = 0)
//	5 OBSERVE  count u32, count × observation         (member → master)
//	           observation: connector str, source str, target str,
//	           up u8, at i64 (unix ms)
//	6 PING     empty, either way; answered by nothing (keepalive)
//	7 ADMIN    connector str, state u8 (0 auto, 1 down, 2 drain)
//	           an operator's override sent through a member (member → master)
//	8 TRACKREQ count u16, count × key str              (track client → server)
//	9 TRACKRESP count u32, count × (len u32, event bytes) (server → track client)
//
// str is u16 length + UTF-8 bytes (at most 255 bytes). A dump client
// sends HELLO with role 2, reads one RECORDS frame (full) and closes.
// A track client (meshctl track, through a node) sends HELLO with role 3,
// reads WELCOME, sends one TRACKREQ with message keys and reads one
// TRACKRESP: the node's message-tracking events for those keys (opaque
// bytes here; JSON written by the node). Any node's Server answers role 3
// (ServerDelegate.Track), for clients ServerDelegate.AllowTrack admits,
// whatever their routing group, over TLS when the Server has TLS.
//
// A Server asks everything of its node through one ServerDelegate (Funcs
// adapts plain functions). Each welcomed member connection is a Session;
// what the member reports is attributed to its Session, and
// ServerDelegate.SessionEnded tells the node when it ends, so that state
// a peer set ends with its session (or a lease after it).
package channel
