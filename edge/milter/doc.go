// Package milter is meshd's content-filter client: it hands a message that
// enters the organisation to a chain of milters (the Sendmail/Postfix filter
// protocol, spoken by rspamd, clamav-milter, opendkim and others) and turns
// their answers into one Verdict.
//
// The node calls Chain.Check once per message, after DATA and before its
// 250 reply, on the listeners where mail enters the organisation (public
// SMTP and submission; never on mesh hops, so a message is filtered once).
// Check replays the transaction to each milter in turn: connect, HELO,
// MAIL, RCPT (one per recipient), DATA, the header fields, end of header,
// the body and end of message. Each milter sees the message as the milters
// before it left it (their header, envelope and body changes applied), as
// Sendmail does.
//
// Chain.CheckRcpt is the RCPT-time check: the milters with the rcpt phase
// are each asked about one recipient in a short session of their own
// (connect, HELO, MAIL, RCPT, abort) while the client waits for its reply.
// A recipient taken out after DATA (refused at the replayed RCPT, or
// deleted at the end of the message) is listed in Verdict.Removed: the
// client had its 250 for it, and the node tells the sender by DSN.
//
// A Verdict is one of Accept (with the changed message), Reject or
// TempFail (with the SMTP reply to send), Discard (250, then drop it) or
// Quarantine (queue it held). A milter that cannot be reached, times out
// or breaks the protocol counts as failed, and its Config.OnFailure says
// what follows: tempfail (the client tries again later: nothing is lost)
// or accept (the message goes on without that milter's opinion).
//
// The wire protocol is github.com/d--j/go-milter's client; this package
// adds the chain, the message edits (message.go) and the failure policy.
package milter
