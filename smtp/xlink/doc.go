// Package xlink carries link state between routing groups over SMTP with
// the X-LINK2STATE extension (wire format in PROTOCOL.md).
//
// Server side. go-smtp has no hook for custom verbs or EHLO keywords, so
// Listen wraps the mesh-facing net.Listener and every accepted connection
// is a *Conn standing between the client and go-smtp:
//
//	client bytes ──► Conn.Read ──► go-smtp        (one command line per Read)
//	                    │
//	                    └─ X-LINK2STATE, STARTTLS: answered here, straight to the client
//	go-smtp replies ─► Conn.Write ─► client       (EHLO reply gains X-LINK2STATE/STARTTLS)
//
// The Conn follows the dialogue by watching go-smtp's replies: a command
// is intercepted only when go-smtp has written the final reply of every
// earlier command (go-smtp is asking for its next command), so replies
// stay in order under PIPELINING. After go-smtp's 354 the message passes
// up to the end-of-data line (same state machine as go-smtp), after a BDAT
// command its chunk passes raw; message content is never interpreted. If
// go-smtp ever ends a command before the content the Conn expected, the
// Conn stops intercepting for the rest of the connection.
//
// TLS. go-smtp decides TLS by asserting *tls.Conn, so on a mesh listener
// the Conn terminates STARTTLS itself (Config.TLS) and go-smtp must run
// with a nil TLSConfig. After the handshake go-smtp is fed an RSET whose
// reply is swallowed and the client must EHLO again (RFC 3207 §4.2). Code
// that needs the TLS state reaches it through go-smtp's Conn.Conn():
//
//	if xc, ok := c.Conn().(interface {
//		TLSConnectionState() (tls.ConnectionState, bool)
//	}); ok { state, isTLS := xc.TLSConnectionState() ... }
//
// and (*Conn).PeerCertificate gives the verified client certificate. Read
// the state when it is needed (MAIL, RCPT, DATA), not in NewSession: the
// go-smtp session is created at the first EHLO, before STARTTLS.
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
