// Package dialogue is the SMTP dialogue as an interposer sees it: the
// pieces shared by the connections that sit between a net.Listener and
// github.com/emersion/go-smtp (smtp's dialogConn and smtp/xlink's Conn)
// and follow the dialogue so that they can answer some commands
// themselves and adjust some replies, without ever interpreting message
// content.
//
// Client to server, an interposer hands go-smtp one command line at a
// time (ReadLine), splits each line the way go-smtp does (Verb), and lets
// message content through untouched: DATA content up to and including
// its end line (EndOfData, RFC 5321 §4.1.1.4) and BDAT chunks by their
// declared size (ChunkSize, ReadChunk; RFC 3030 §2).
//
// Server to client, ReplyBuffer cuts go-smtp's writes into reply lines
// and hands each to the interposer's filter; ReplyCode parses a line's
// code and whether it is the last of its reply (RFC 5321 §4.2), and
// InsertKeywords adds EHLO keywords before the last line of a 250 reply.
//
// Wire is the interposer's side towards the client: it passes go-smtp's
// writes through ReplyBuffer and the interposer's filter
// (WriteReplies), writes replies of the interposer's own (Reply),
// terminates STARTTLS (StartTLS, RFC 3207; IsSTARTTLS checks the exact
// command) so that go-smtp, configured without TLS, sees plaintext, and
// closes with a TLS close_notify. Its Deadlines remember the deadlines
// go-smtp sets, so that they can be put back after the interposer read,
// wrote or shook hands under its own.
//
// The policy stays with each interposer: which verbs it answers, which
// replies it rewrites and which keywords it announces. This package
// imports neither of them.
package dialogue
