// Package dialogue is the one follower of the SMTP dialogue that sits
// between a net.Listener and github.com/emersion/go-smtp: Conn, the
// connection go-smtp reads and writes, follows the dialogue so that it can
// answer some commands itself (STARTTLS, the verbs of its Extensions) and
// adjust some replies, without ever interpreting message content. smtp's
// Server gives every accepted connection one Conn (with smtp/xlink's
// X-LINK2STATE as an Extension on mesh listeners); smtp/xlink's Listen
// does the same for a go-smtp server of one's own.
//
//	client ─► Conn.Read ─► go-smtp       one command line per Read; in command
//	              │                      state the Extensions' Command first,
//	              │                      then STARTTLS (ours), then go-smtp's
//	              └─ own replies (Reply, Drop) straight to the client
//	go-smtp ─► Conn.Write ─► client      reply lines: EHLO gains STARTTLS and the
//	                                     Extensions' Keywords, RewriteReply
//
// The follower is five states, each with its handler for client bytes
// (readers, in the manner of a BGP FSM's one handler per state) and a
// transition on go-smtp's final reply line (afterReply):
//
//	command ─(line to go-smtp)─► busy ─(final reply)─► command
//	busy ─(354 to DATA)─► data ─(end-of-data line)─► busy
//	command ─(BDAT n, n>0)─► chunk ─(n bytes)─► busy (or command if go-smtp answered first)
//	busy ─(reply to QUIT)─► pass; data ─(a reply mid-content)─► pass; a line too long ─► pass
//
// In pass, bytes go both ways untouched for the rest of the connection.
//
// The pieces: ReadLine reads a command line, bounded by the line buffer;
// Verb splits it the way go-smtp does; DATA content passes up to and
// including its end line (EndOfData, RFC 5321 §4.1.1.4) and BDAT chunks by
// their declared size (ChunkSize, ReadChunk; RFC 3030 §2; a chunk cut by
// the client's close is io.ErrUnexpectedEOF, never a short whole chunk).
// Towards the client, ReplyBuffer cuts go-smtp's writes into reply lines;
// ReplyCode parses a line's code and whether it is the last of its reply
// (RFC 5321 §4.2), and InsertKeywords adds EHLO keywords before the last
// line of a 250 reply. Wire serialises the writes to the client, runs
// STARTTLS (RFC 3207; IsSTARTTLS checks the exact command) so that
// go-smtp, configured without TLS, sees plaintext, and closes with a TLS
// close_notify; its Deadlines remember the deadlines go-smtp sets, so that
// they can be put back after the follower read, wrote or shook hands
// under its own.
//
// The policy of a listener is its Config: TLS, the Extensions, the
// command and reply rewrites (smtp's renumbering of go-smtp's sequence
// errors), the reply counter. This package imports neither smtp nor
// smtp/xlink.
package dialogue
