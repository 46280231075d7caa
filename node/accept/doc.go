// Package accept is where a message received over SMTP enters the node:
// the smtp.Sink of every listener. It gives the message its mesh ID,
// believes or strips the X-Meshd-* trust fields, has the edge screen it,
// and queues it; the 250 goes out only after the synced commit.
//
//	smtp.Server ──AcceptID──▶ Sink
//	                           │ mesh peer: X-Meshd-ID / -Origin / -Trace believed,
//	                           │   loop check, content digest (dedup of resends)
//	                           │ anyone else: X-Meshd-* stripped, Edge.Screen
//	                           │   (Authentication-Results, milters)
//	                           ▼
//	                     Queue.Enqueue (synced) ──▶ 250 / 451 4.3.0 (ErrQueueFull)
//	                           │ ErrDuplicate: 250, nothing new; ErrCollision: queued under a derived ID
//	                           ▼
//	                     Track.Received, Metrics.Accepted, Edge.Queued (DSN for removed recipients)
//
// The origin ID and Message-ID are read once here into queue.Envelope.
package accept
