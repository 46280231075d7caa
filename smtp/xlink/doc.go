// Package xlink carries link state between routing groups over SMTP with
// the X-LINK2STATE extension (wire format in PROTOCOL.md).
//
// Server side. go-smtp has no hook for custom verbs or EHLO keywords, so
// X-LINK2STATE is an Extension of smtp/dialogue's follower, the one
// connection that stands between the client and go-smtp: smtp.Server runs
// it on a mesh listener (ServerConfig.Extensions), and Listen wraps a
// net.Listener for a go-smtp server of one's own.
//
//	client bytes ──► follower ──► go-smtp      (one command line per Read)
//	                    │
//	                    └─ X-LINK2STATE (Extension.Command): answered here, straight to the client
//	go-smtp replies ─► follower ─► client       (EHLO reply gains STARTTLS, X-LINK2STATE)
//
// A command is intercepted only when go-smtp has written the final reply
// of every earlier command (go-smtp is asking for its next command), so
// replies stay in order under PIPELINING; message content (DATA, BDAT) is
// never interpreted. While a transfer is open any command but RSET and
// QUIT drops the session; EHLO, HELO, RSET and STARTTLS end the exchange.
//
// TLS. The follower terminates STARTTLS (Config.TLS for Listen, the
// server's TLS for smtp.Server) and go-smtp runs without TLS; X-LINK2STATE
// is refused before it (530 5.7.0) and offered only when Allow accepts the
// peer's verified certificate. Code that needs the TLS state reaches it
// through go-smtp's Conn.Conn():
//
//	if xc, ok := c.Conn().(interface {
//		TLSConnectionState() (tls.ConnectionState, bool)
//	}); ok { state, isTLS := xc.TLSConnectionState() ... }
//
// Read the state when it is needed (MAIL, RCPT, DATA), not in NewSession:
// the go-smtp session is created at the first EHLO, before STARTTLS.
//
// Client side. Sync (or SyncConn on a connection of the caller's) opens its
// own SMTP session with net/textproto: EHLO, STARTTLS when configured,
// DIGEST, and when the digests differ SUMMARIES both ways, only newer
// RECORDS both ways, a closing DIGEST, QUIT. A peer without the keyword
// yields ErrNotSupported.
//
// The link-state payloads are opaque here: both sides code against Store
// (the node adapts the linkstate LSDB to it).
package xlink
