// Package smtp is meshd's SMTP edge: the receiving server that accepts mail
// from the outside world, submission clients and mesh peers, and the sending
// client that hands mail to remote MTAs, smarthosts, LMTP servers and peers.
//
// # Server
//
// [NewServer] wraps github.com/emersion/go-smtp with every limit set
// explicitly (go-smtp's own defaults are unlimited), see [Limits]. A
// connection flows like this:
//
//	net.Listener (injected or bound by NewServer; smtp/xlink may wrap it)
//	  -> per-IP connection cap (421 4.7.0 beyond Limits.MaxConnsPerIP)
//	  -> go-smtp protocol engine (EHLO, PIPELINING, SIZE, 8BITMIME,
//	     ENHANCEDSTATUSCODES, SMTPUTF8, DSN, CHUNKING/BDAT, STARTTLS, AUTH)
//	  -> session: submission rules, [Policy.CheckRcpt] per recipient
//	  -> DATA/BDAT: size, header size and Received-count checks,
//	     our Received: header prepended (RFC 5321 §4.4)
//	  -> [Sink.Accept], whose result becomes the final reply.
//
// The package imports neither the queue nor the node: the node implements
// [Policy], [Sink] and [Authenticator].
//
// # Client
//
// [Client.Send] delivers one message to one host:port over SMTP or LMTP,
// with STARTTLS (opportunistic or required), DSN parameters passed through
// when the peer advertises DSN, and per-recipient results. Sessions are kept
// idle per address and reused after RSET. Whole-transaction failures are
// returned as [*DeliveryError].
package smtp
