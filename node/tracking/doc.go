// Package tracking is the message-tracking log of a node and the way a
// node asks the others for theirs. Every node appends one JSON line per
// event of a message's life (received, relayed, delivered, deferred,
// bounced, dsn) to <data_dir>/track.log. The file is bounded: past
// 8 MiB it is renamed to track.log.1 (replacing the older one) and a new
// one begins.
//
//	accept ──Received──┐
//	delivery ─Attempted─┼─▶ Log ─▶ track.log (JSON lines, rotated)
//	         ─DSNQueued─┘     │
//	                          ├─ Find(keys): ID, Message-ID or DSN ID
//	                          └─ Answer: port-691 tracking requests (channel.ServerConfig.Track)
//
//	GET /api/track/{key} ─▶ Finder.Across ─▶ this Log + channel.Track to every
//	                        Peer of the LSDB, in parallel; the copy IDs and DSN IDs
//	                        found are asked for in the next round (≤ 16 rounds)
//	                        ─▶ events ordered hop by hop (hopDepths), then by time
//
// A node answers tracking requests to mesh peers only (over TLS under
// mesh.require_tls): its events name senders and recipients. The copy ID a
// node relayed is the ID the next hop received the message under, so the
// fan-out follows a message hop by hop.
package tracking
