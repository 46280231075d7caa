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
//	net.Listener (injected or bound by NewServer)
//	  -> per-IP connection cap (421 4.7.0 beyond Limits.MaxConnsPerIP)
//	  -> dialogue follower (smtp/dialogue.Conn, policy in dialog.go):
//	     terminates STARTTLS (RFC 3207) when ServerConfig.TLS is set, runs
//	     ServerConfig.Extensions (X-LINK2STATE on mesh listeners), renumbers
//	     go-smtp's sequence errors from 502 to 503 5.5.1 (RFC 5321 §4.3.2);
//	     it tracks DATA and BDAT so message content is never looked at
//	  -> go-smtp protocol engine (EHLO, PIPELINING, SIZE, 8BITMIME,
//	     ENHANCEDSTATUSCODES, SMTPUTF8, DSN, CHUNKING/BDAT, AUTH), which
//	     sees plaintext only and is configured without TLS
//	  -> session: AUTH only over TLS (538 5.7.11 before), submission
//	     rules, [Policy.CheckRcpt] per recipient
//	  -> DATA/BDAT: size, header size and Received-count checks,
//	     our Received: header prepended (RFC 5321 §4.4)
//	  -> [Sink.Accept], whose result becomes the final reply.
//
// go-smtp cannot be extended with hooks, and it wraps its connection in
// tls.Server itself, below which replies could no longer be rewritten;
// hence TLS is ended one layer lower, in the dialogue follower, the one
// interposer of every connection (mesh listeners included: X-LINK2STATE is
// an extension of it, not a layer of its own); the session reads the TLS
// state from it.
//
// Replies are [Reply] values (code, enhanced code, text; package
// smtp/reply): [Policy] and [Sink] return one to have it sent, and the
// client's results carry the server's.
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
// returned as [*DeliveryError]; both carry the server's [Reply].
package smtp
